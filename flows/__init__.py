"""flows."""

from flows import fork_safety

fork_safety.register()
