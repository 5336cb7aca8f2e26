"""A process that ran a flow can still fork children that exit cleanly (a Prefect 3.8.8 defect).

When a flow runs in a process, Prefect starts background services (its log and event workers)
and registers a thread-exit hook for each. After a fork it resets the services in the child but
keeps the hooks, which then fail an assertion when the child exits: every later forked child
exits with code 1. That child is a PyTorch DataLoader worker in a notebook that ran
``milmer preprocess`` in-process before training (``examples/own_model.py`` forks by default),
or a ``multiprocessing`` worker. Importing :mod:`flows` registers :func:`forget_prefect_exit_hooks`
to run in every forked child, so the child drops those hooks. No other hook is touched.
"""

from __future__ import annotations

import os
import threading


def _is_prefects(hook: object) -> bool:
    owner = getattr(getattr(hook, "func", hook), "__self__", None)  # a partial of a bound method
    return type(owner).__module__.startswith("prefect.")


def forget_prefect_exit_hooks() -> None:
    """In a forked child: drop the thread-exit hooks of Prefect's background services."""
    hooks = getattr(threading, "_threading_atexits", None)  # CPython's list behind _register_atexit
    if hooks:
        hooks[:] = [hook for hook in hooks if not _is_prefects(hook)]


def register() -> None:
    """Run :func:`forget_prefect_exit_hooks` in every child this process forks (``flows`` calls it
    once, on import)."""
    os.register_at_fork(after_in_child=forget_prefect_exit_hooks)
