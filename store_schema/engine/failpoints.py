"""Named crash points for crash-safety tests (the pattern of fail-rs / FoundationDB's buggify).

A test sets ``MILMER_FAILPOINT=<store path of a subject-stage>:<point>``, e.g.
``subjects/s02/eeg:after-arrays``, and runs the real command in a subprocess; when that point is
reached the process kills itself with SIGKILL, exactly as a power cut or the OOM killer would. With
the variable unset (always, outside such tests) a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "MILMER_FAILPOINT"

POINTS = ("before-compute", "mid-compute", "before-write", "mid-array", "after-arrays")
"""In the order a subject-stage reaches them:

- ``before-compute`` (runner): the fingerprint differs, nothing loaded yet;
- ``mid-compute`` (store_schema.run.runner): at a stage's progress reports: the EEG stage after its band-pass,
  as ICA starts; faces after each video; tokens after each batch (not reached by ingest/segment);
- ``before-write`` (store): computed, the previous commit still in place;
- ``mid-array`` (store): after the first chunk-slab of an array written in several;
- ``after-arrays`` (store): every array on disk, no commit record yet.
"""


_ERRORS = {"enospc": errno.ENOSPC, "eacces": errno.EACCES, "erofs": errno.EROFS}


def failpoint(where: str, point: str) -> None:
    """SIGKILL at ``where:point``; ``where:point=enospc`` (or ``eacces``, ``erofs``) raises that
    OSError instead, as the file system would (the ``write-error`` point sits where a subject-stage's
    first byte is written)."""
    wanted = os.environ.get(ENV)
    if not wanted or not wanted.startswith(f"{where}:{point}"):
        return
    action = wanted[len(where) + len(point) + 1:]
    if action == "":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("=") and action[1:] in _ERRORS:
        code = _ERRORS[action[1:]]
        raise OSError(code, os.strerror(code), where)
