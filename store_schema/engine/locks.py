"""Subject-stage locks: one writer per subject-stage, across threads, processes and runs.

Two ``milmer preprocess`` runs on one store must never write the same subject-stage at the same
time (Zarr writers sharing a group lose data). :func:`run_stage <store_schema.run.runner.run_stage>`
therefore holds, around "check the commit record, compute, write, commit":

- the subject-stage it writes **exclusively**, and
- every upstream subject-stage it reads (all ancestors in the layout) **shared**, so no other run
  rewrites an input while it is read.

Locks are taken in one global order (stage order within a subject; one subject at a time), so
two runs can never deadlock. Each lock has two layers:

1. a process-local readers-writer lock per subject-stage (threads of one process: the flow's
   default task runner);
2. on a local disk, BSD ``flock`` on a lock file opened anew for each acquisition, so it excludes
   other processes and other threads alike. The kernel drops it when its process dies: a killed
   run leaves no stale lock behind.

**Where the lock files live.** A store at ``/data/deap.zarr`` keeps them in the sibling folder
``/data/deap.zarr.locks/`` (``s01.eeg.lock``, one per subject-stage, created on first use, never
deleted: deleting a lock file races with its waiters). It lies outside Zarr's node hierarchy, so
``FeatureStore.subjects()``, ``milmer store verify`` and ``milmer store info`` never see it; it
needs the store's parent folder to be writable. The path is resolved (``realpath``), so two runs
that name one store by different paths or symlinks share its locks. The writer holding a lock
writes "pid N on HOST since T" into its file, which a waiting run quotes.

**Object stores and other fsspec URLs** (``s3://``, ``gs://``, ``memory://`` ...; and every store
where ``fcntl`` is missing, i.e. Windows): a lock file cannot work there (no advisory locks, no
atomic create-if-absent that every backend honours). Only the process-local layer is taken, so
threads of one run never collide (for ``memory://``, which lives in one process, that is all it
takes), and a warning says once per store that two *processes* on it must not run at once: run them one after another or on disjoint ``--subjects``. ``flock`` on NFS
is emulated by Linux with POSIX locks, which do not exclude the threads of one process; the
process-local layer covers that (NFS locking itself, lockd or NFSv4, was not tested here).

**A holder that died.** Nothing here decides whether a holder is alive: the text "pid N on HOST"
only names it for a waiting run. A dead process's ``flock`` is dropped by its kernel (a Dask
worker killed mid-stage leaves no lock for the rerun: ``tests/test_dask_worker_kill.py``). On NFS
the server holds the POSIX locks: a dead process on a live host is released at once by that host;
a dead host's locks last until the server drops them (NFSv4: its lease expires, ~90 s by
default; NFSv3/NLM: the host reboots and its statd notifies the server), and a retry on another
host waits until then, naming the holder.

Waiting is never silent: the ``on_wait`` callback hears about each wait as it starts, and
:class:`LockWait` reports the total seconds and who held the lock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from store_schema.errors import StoreError
from store_schema.contract.layout import STAGE_ORDER, Stage, stage_path, subject_key

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; process-local locks only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_DIR_SUFFIX = ".locks"


@dataclass
class LockWait:
    """How long acquiring a subject-stage's locks waited, and for whom (empty: no contention)."""

    seconds: float = 0.0
    held_by: list[str] = field(default_factory=list)
    """One line per contended lock: ``subjects/s01/eeg held by pid 4242 on host (since ...)``."""

    @property
    def waited(self) -> bool:
        return bool(self.held_by)

    def describe(self) -> str:
        return f"waited {self.seconds:.1f} s for " + "; ".join(self.held_by)


def local_path(url: str) -> Path | None:
    """The local folder of a store URL, or ``None`` for a remote or in-memory fsspec URL."""
    url = str(url)
    if url.startswith("file://"):
        return Path(url[len("file://"):])
    if "://" in url:
        return None
    return Path(url)


def lock_dir(url: str) -> Path | None:
    """Where a store's lock files live: ``<store>.locks`` beside it; ``None`` off local disks."""
    path = local_path(url)
    if path is None or fcntl is None:
        return None
    resolved = Path(os.path.realpath(path))
    return resolved.with_name(resolved.name + LOCK_DIR_SUFFIX)


# -- the process-local layer ---------------------------------------------------------------


class _LocalRWLock:
    """A readers-writer lock between the threads of this process; remembers its writer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer: str | None = None

    def acquire(self, *, shared: bool, blocking: bool) -> bool:
        with self._cond:
            while self._writer is not None or (not shared and self._readers):
                if not blocking:
                    return False
                self._cond.wait()
            if shared:
                self._readers += 1
            else:
                self._writer = _holder_text()
            return True

    def release(self, *, shared: bool) -> None:
        with self._cond:
            if shared:
                self._readers -= 1
            else:
                self._writer = None
            self._cond.notify_all()

    def holder(self) -> str:
        with self._cond:
            return (f"another task of this process ({self._writer})" if self._writer
                    else "another task of this process reading it")


_REGISTRY: dict[tuple[str, ...], _LocalRWLock] = {}
_REGISTRY_LOCK = threading.Lock()
_WARNED: set[str] = set()
_OPEN_FDS: set[int] = set()
"""Lock files this process holds open (a forked child closes its copies, see below)."""


def _forget_locks_in_child() -> None:
    """A forked child holds none of its parent's locks: fresh process-local locks, and its copies
    of the parent's lock-file descriptors closed (closing a copy leaves the parent's flock be;
    unlocking it would drop it)."""
    global _REGISTRY, _REGISTRY_LOCK
    for fd in list(_OPEN_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _OPEN_FDS.clear()
    _REGISTRY, _REGISTRY_LOCK = {}, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)


def _local_lock(key: tuple[str, ...]) -> _LocalRWLock:
    with _REGISTRY_LOCK:
        return _REGISTRY.setdefault(key, _LocalRWLock())


def _holder_text() -> str:
    since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"pid {os.getpid()} on {socket.gethostname()}, thread {threading.current_thread().name}, since {since}"


def _warn_not_local(url: str) -> None:
    if url.startswith("memory://"):
        return  # lives in this process only: the process-local lock is the whole story
    with _REGISTRY_LOCK:
        if url in _WARNED:
            return
        _WARNED.add(url)
    log.warning(
        "store %s is not on a local disk: subject-stage locks are process-local there, so two "
        "preprocess processes on it at once may write the same subject-stage; run them one after "
        "another or on disjoint --subjects", url)


# -- one lock: both layers -----------------------------------------------------------------


class _Held:
    def __init__(self, local: _LocalRWLock, shared: bool, fd: int | None) -> None:
        self.local, self.shared, self.fd = local, shared, fd
        self.pid = os.getpid()

    def release(self) -> None:
        if os.getpid() != self.pid:
            return  # a forked child: its copy of the fd is closed already; the lock is the parent's
        try:
            if self.fd is not None:
                try:
                    if not self.shared:
                        os.ftruncate(self.fd, 0)  # nobody holds it for writing any more
                finally:
                    _OPEN_FDS.discard(self.fd)
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
                    os.close(self.fd)
        finally:
            self.local.release(shared=self.shared)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return f"another run ({text})" if text else "another run"


def _acquire_one(
    url: str, folder: Path | None, subject: int, stage: Stage, *, shared: bool,
    waits: LockWait, on_wait: Callable[[str], None] | None,
) -> _Held:
    where = stage_path(subject, stage)
    mode = "shared" if shared else "exclusive"
    path = folder / f"{subject_key(subject)}.{stage.value}.lock" if folder is not None else None
    local = _local_lock((str(path),) if path is not None else (url, str(subject), stage.value))

    def waiting(holder: str) -> float:
        line = f"{where} held by {holder}"
        waits.held_by.append(line)
        if on_wait is not None:
            on_wait(f"waiting for {where} ({mode}), held by {holder}")
        return time.perf_counter()

    if not local.acquire(shared=shared, blocking=False):
        started = waiting(local.holder())
        local.acquire(shared=shared, blocking=True)
        waits.seconds += time.perf_counter() - started
    if path is None:
        return _Held(local, shared, None)
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        local.release(shared=shared)
        raise StoreError(f"{url}: cannot open the lock file {path} ({err.strerror}); the folder "
                         "beside the store must be writable") from None
    _OPEN_FDS.add(fd)
    try:
        operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            started = waiting(_read_holder(fd))
            fcntl.flock(fd, operation)
            waits.seconds += time.perf_counter() - started
        if not shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{_holder_text()}\n".encode(), 0)
    except BaseException:
        _OPEN_FDS.discard(fd)
        os.close(fd)  # closing drops a flock taken on it
        local.release(shared=shared)
        raise
    return _Held(local, shared, fd)


@contextmanager
def subject_stage_lock(
    url: str,
    subject: int,
    stage: Stage | str,
    *,
    reads: Iterable[Stage | str] = (),
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[LockWait]:
    """Hold ``stage`` of ``subject`` exclusively and the stages in ``reads`` shared.

    Blocks until every lock is free; yields a :class:`LockWait` that says how long it waited and
    for whom. ``on_wait`` hears each wait as it starts (a log line, so a stalled run says why).
    """
    stage = Stage(stage)
    shared = {Stage(s) for s in reads} - {stage}
    wanted = sorted([(s, True) for s in shared] + [(stage, False)], key=lambda x: STAGE_ORDER.index(x[0]))
    folder = lock_dir(url)
    if folder is None:
        _warn_not_local(str(url))
    waits = LockWait()
    with ExitStack() as stack:
        for s, is_shared in wanted:
            held = _acquire_one(str(url), folder, subject, s, shared=is_shared, waits=waits,
                                on_wait=on_wait)
            stack.callback(held.release)
        yield waits
