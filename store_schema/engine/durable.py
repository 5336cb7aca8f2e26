"""Durable commits on a local (or NFS) store: what a commit record points at is on the disk first.

Zarr writes every file as "temporary file, then rename" but never fsyncs, so after a power cut the
file system may keep a renamed ``zarr.json`` holding a commit record while chunk files written a
moment before are empty or missing. :class:`~store_schema.engine.store.FeatureStore` therefore, on a
local store and unless switched off:

1. after a subject-stage's arrays are written, fsyncs every file under its folder, each folder
   after its files (deepest first), then the folders above it up to the store's root, so the new
   names are on disk too (:func:`fsync_tree`);
2. writes the commit record itself (:func:`replace_json_durably`): the group's ``zarr.json`` with
   the record added, into a temporary file that is fsynced, renamed into place, and its folder
   fsynced, so the rename is on disk before the stage is reported computed.

Object stores (``s3://`` ...) make an object durable when its PUT returns: nothing to do there.
The switch: ``FeatureStore.open(..., durable=False)``, or ``MILMER_FSYNC=0`` in the environment
(for storage where fsync does not apply or a scratch store where speed matters more).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ENV = "MILMER_FSYNC"
SYNC_THREADS = 16
"""fsyncs in flight at once for one subject-stage."""


def durable_by_default() -> bool:
    """True unless ``MILMER_FSYNC=0`` (or ``false``/``no``/``off``)."""
    return os.environ.get(ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (names created, renamed or removed in it)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path, *, up_to: Path) -> int:
    """fsync every file under ``folder``, then every folder, deepest first; then each folder
    above ``folder`` up to and including ``up_to``. Returns the files synced.

    The files are synced from several threads at once: each fsync waits for the disk, and the
    file system commits concurrent ones together (a subject's 800 segment chunks one by one took
    most of the segment stage's time).
    """
    files: list[str] = []
    folders: list[str] = []
    for dirpath, _, filenames in os.walk(folder, topdown=False):
        files += [os.path.join(dirpath, name) for name in filenames]
        folders.append(dirpath)
    if len(files) > 1:
        with ThreadPoolExecutor(max_workers=min(SYNC_THREADS, len(files))) as pool:
            list(pool.map(fsync_file, files))  # list(): re-raise the first failure
    else:
        for path in files:
            fsync_file(path)
    for dirpath in folders:  # os.walk bottom-up: a folder after everything inside it
        fsync_dir(dirpath)
    fsync_parents(folder, up_to=up_to)
    return len(files)


def fsync_parents(path: Path, *, up_to: Path) -> None:
    """fsync the folders holding ``path``, from its own parent up to and including ``up_to``."""
    top = up_to.resolve()
    for parent in path.resolve().parents:
        fsync_dir(parent)
        if parent == top:
            break


def replace_json_durably(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the JSON file ``path`` as ``change`` edits it: temporary file, fsync, rename over
    ``path``, fsync its folder. A crash at any point leaves either the old or the new file."""
    document = json.loads(path.read_bytes())
    change(document)
    # zarr's own naming for a file being written, which its listings skip like zarr's own
    temporary = path.with_suffix(f".{uuid.uuid4().hex}.partial")
    try:
        with open(temporary, "wb") as f:
            f.write(json.dumps(document, indent=2).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
