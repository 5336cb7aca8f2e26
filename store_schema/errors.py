"""The project's exception base, shared by every package (this module imports nothing heavy)."""


class MilmerError(Exception):
    """Base of every error the project raises on purpose; its message is meant for the user."""


class StoreError(MilmerError):
    """A store that cannot be opened, read or written as asked. The message names the store."""


class StoreWriteError(StoreError):
    """The file system refused a write (disk full, quota, read-only, permission): nothing of the
    subject-stage was committed and what was committed before is intact."""
