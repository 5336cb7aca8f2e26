"""Named crash points for crash-safety tests (the pattern of fail-rs / FoundationDB's buggify).

A test sets ``MILMER_FAILPOINT=<store path of a subject-stage>:<point>``, e.g.
``subjects/s02/eeg:after-arrays``, and runs the real command in a subprocess; when that point is
reached the process kills itself with SIGKILL, exactly as a power cut or the OOM killer would. With
the variable unset (always, outside such tests) a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "MILMER_FAILPOINT"

POINTS = ("before-compute", "before-write", "after-arrays")
"""Where :mod:`store_schema.runner` and :mod:`store_schema.store` call :func:`failpoint`."""


def failpoint(where: str, point: str) -> None:
    if os.environ.get(ENV) == f"{where}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)
