"""Check that every committed subject-stage is what its commit record says it is, and repair.

:func:`verify_store` lists every problem (one per subject-stage and array). :func:`repair_store`
drops the commit markers of exactly the subject-stages with problems, so readers stop seeing them
and the next ``milmer preprocess`` recomputes exactly those (a downstream stage stays committed:
when its upstream comes back with the same fingerprint it is kept, otherwise it is recomputed).

A committed subject-stage whose upstream is *not* committed (after a repair, or a run killed while
recomputing the upstream) is not damaged: its arrays match its record. :func:`pending_stages`
lists those separately; they are not problems.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from store_schema.contract.layout import (
    FIXED_DIMS,
    SCHEMA_VERSION,
    Stage,
    stage_path,
    stage_spec,
)
from store_schema.engine.locks import subject_stage_lock
from store_schema.contract.staleness import stale_inputs
from store_schema.engine.store import FeatureStore, StageRecord


class StoreProblem(BaseModel):
    """One problem with one subject-stage (and array, when it concerns one)."""

    model_config = ConfigDict(frozen=True)

    subject: int
    stage: Stage
    array: str | None
    message: str

    def __str__(self) -> str:
        where = stage_path(self.subject, self.stage) + (f"/{self.array}" if self.array else "")
        return f"{where}: {self.message}"


def verify_store(store: FeatureStore, *, read_chunks: bool = True) -> list[StoreProblem]:
    """Every problem of every committed subject-stage; an empty list means the store is sound.

    ``read_chunks`` decodes every chunk (slow on a large store, but the only way to find a
    corrupt one); without it only chunk presence is checked.
    """
    problems: list[StoreProblem] = []
    damaged: set[tuple[int, Stage]] = set()
    for subject, stage, state in store.iter_stages():  # stage order: upstream stages first
        if state == "committed":
            record = store.record(subject, stage)
            if record is None:  # uncommitted meanwhile by a run rewriting it: nothing to check
                continue
            found = _check_stage(store, record, read_chunks=read_chunks, damaged=damaged)
            if found:
                damaged.add((subject, stage))
            problems.extend(found)
    return problems


def pending_stages(store: FeatureStore) -> list[StoreProblem]:
    """Committed subject-stages whose upstream is not committed (not a problem: the next
    ``milmer preprocess`` recomputes the upstream, then keeps or recomputes these by fingerprint)."""
    pending = []
    for subject, stage, state in store.iter_stages():
        if state != "committed":
            continue
        for upstream in stage_spec(stage).upstream:
            if store.record(subject, upstream) is None:
                pending.append(StoreProblem(
                    subject=subject, stage=stage, array=None,
                    message=f"upstream stage '{upstream.value}' is not committed; the next "
                            f"`milmer preprocess` recomputes it, then keeps this stage if its "
                            "fingerprint comes out the same"))
    return pending


class Repair(BaseModel):
    """One subject-stage whose commit marker :func:`repair_store` dropped, and why."""

    model_config = ConfigDict(frozen=True)

    subject: int
    stage: Stage
    problems: list[StoreProblem]

    def __str__(self) -> str:
        n = len(self.problems)
        return (f"repaired {stage_path(self.subject, self.stage)}: commit marker dropped "
                f"({n} problem{'s' if n != 1 else ''}); the next `milmer preprocess` recomputes it")


def repair_store(
    store: FeatureStore, problems: Iterable[StoreProblem], *, read_chunks: bool = True
) -> list[Repair]:
    """Uncommit every subject-stage named in ``problems`` that still has a problem.

    Each one is checked again under its subject-stage lock (see :mod:`store_schema.engine.locks`)
    before its marker is dropped, so a stage that a concurrent run has just rewritten (and
    fixed) is left alone. Returns what was uncommitted, in the order of ``problems``.
    """
    targets = list(dict.fromkeys((p.subject, p.stage) for p in problems))
    damaged = set(targets)
    repairs: list[Repair] = []
    for subject, stage in targets:
        with subject_stage_lock(store.url, subject, stage):
            record = store.record(subject, stage)
            if record is None:
                continue  # uncommitted already (a run is rewriting it, or a repair ran before)
            still = _check_stage(store, record, read_chunks=read_chunks,
                                 damaged=damaged - {(subject, stage)})
            if not still:
                continue
            store.uncommit(subject, stage)
            repairs.append(Repair(subject=subject, stage=stage, problems=still))
    return repairs


def _check_stage(
    store: FeatureStore, record: StageRecord, *, read_chunks: bool,
    damaged: set[tuple[int, Stage]] = frozenset(),
) -> list[StoreProblem]:
    """Problems of one committed subject-stage. Staleness against an upstream in ``damaged`` is
    not judged (a damaged upstream reads wrong: its own problem is reported, not this one's)."""
    subject, stage = record.subject, record.stage
    spec = stage_spec(stage)
    found: list[StoreProblem] = []

    def problem(message: str, array: str | None = None) -> None:
        found.append(StoreProblem(subject=subject, stage=stage, array=array, message=message))

    if record.schema_version != SCHEMA_VERSION:
        problem(f"committed by schema version {record.schema_version}, expected {SCHEMA_VERSION}")
    if record.expected_fingerprint() != record.fingerprint:
        problem("commit marker's fingerprint does not match its recorded stage, parameters and "
                "inputs (edited or corrupt record)")
    # An uncommitted upstream is pending (see pending_stages), not damage; a damaged one is
    # reported on its own.
    if not any(store.record(subject, up) is None or (subject, up) in damaged for up in spec.upstream):
        reason = stale_inputs(store, subject, stage, record.inputs, require_all=True)
        if reason:
            problem(f"stale: {reason}")

    group = store.stage_group(subject, stage)
    assert group is not None
    sizes: dict[str, int] = {}
    for array_spec in spec.arrays:
        name = array_spec.name
        try:
            array = group[name]
        except KeyError:
            problem("array missing", name)
            continue
        except Exception as err:  # noqa: BLE001 - unreadable metadata is a finding, not a crash
            problem(f"array metadata unreadable ({type(err).__name__}: {err})", name)
            continue
        recorded = record.arrays.get(name)
        shape = tuple(array.shape)
        if recorded is None:
            problem("array not listed in the commit record", name)
        elif tuple(recorded.shape) != shape:
            problem(f"shape {shape} differs from the committed {tuple(recorded.shape)}", name)
        if str(array.dtype) != array_spec.dtype:
            problem(f"dtype {array.dtype}, the schema says {array_spec.dtype}", name)
        if len(shape) != len(array_spec.dims):
            problem(f"{len(shape)} dims, the schema says {array_spec.dims}", name)
            continue
        for dim, n in zip(array_spec.dims, shape):
            want = FIXED_DIMS.get(dim, sizes.get(dim))
            if want is not None and n != want:
                problem(f"dim '{dim}' is {n}, expected {want}", name)
            sizes.setdefault(dim, n)
        missing = array.nchunks - array.nchunks_initialized
        if missing:
            problem(f"{missing} of {array.nchunks} chunk(s) missing", name)
        if read_chunks:
            error = _read_every_chunk(array)
            if error:
                problem(error, name)
    return found


def _read_every_chunk(array) -> str | None:  # noqa: ANN001 - zarr.Array
    """Decode the array chunk by chunk; the first unreadable chunk, named by its first index."""
    if not array.shape or array.size == 0:
        try:
            array[...]
        except Exception as err:  # noqa: BLE001
            return f"unreadable ({type(err).__name__}: {err})"
        return None
    if _blosc_framed(array):
        return _check_blosc_chunks(array)
    step = array.chunks[0]
    for start in range(0, array.shape[0], step):
        try:
            array[start : start + step]
        except Exception as err:  # noqa: BLE001 - any decode failure is a corrupt chunk
            return f"chunk at index {start} unreadable ({type(err).__name__}: {err})"
    return None


_BLOSC_HEADER = 16
_CHUNKS_AT_ONCE = 8


def _blosc_framed(array) -> bool:  # noqa: ANN001 - zarr.Array
    """Each stored chunk is one blosc frame (the store's layout: bytes codec, then blosc)."""
    from zarr.codecs import BloscCodec, BytesCodec

    codecs = tuple(array.metadata.codecs)
    return (len(codecs) == 2 and isinstance(codecs[0], BytesCodec)
            and isinstance(codecs[1], BloscCodec))


def _check_blosc_chunks(array) -> str | None:  # noqa: ANN001 - zarr.Array
    """Check every stored chunk's blosc frame before decoding it.

    c-blosc trusts the compressed size written in a frame's header: handed a truncated frame it
    reads past the end of the buffer (whatever lies in memory there, sometimes the rest of the
    very chunk it decoded earlier), so a truncated chunk can decode "fine" or crash the reader.
    The stored size must equal the header's; only then is the frame decoded (what a reader of
    the array would do). A missing chunk is reported by the caller (chunk count).
    """
    import asyncio
    import itertools
    import math

    from numcodecs import Blosc
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    expected = math.prod(array.chunks) * array.dtype.itemsize
    grid = list(itertools.product(*(range(n) for n in array.cdata_shape)))
    codec = Blosc()
    prototype = default_buffer_prototype()

    async def fetch(coords_batch):  # noqa: ANN001, ANN202
        return await asyncio.gather(*(
            (array.store_path / array.metadata.encode_chunk_key(c)).get(prototype=prototype)
            for c in coords_batch))

    for first in range(0, len(grid), _CHUNKS_AT_ONCE):
        batch = grid[first : first + _CHUNKS_AT_ONCE]
        try:
            buffers = sync(fetch(batch))
        except Exception as err:  # noqa: BLE001 - an unreadable file is a finding
            return f"chunk at index {batch[0][0] * array.chunks[0]} unreadable ({type(err).__name__}: {err})"
        for coords, buffer in zip(batch, buffers):
            if buffer is None:
                continue
            where = f"chunk at index {coords[0] * array.chunks[0]}"
            raw = buffer.to_bytes()
            if len(raw) < _BLOSC_HEADER:
                return f"{where} unreadable (truncated: {len(raw)} bytes, less than a blosc header)"
            nbytes = int.from_bytes(raw[4:8], "little")
            cbytes = int.from_bytes(raw[12:16], "little")
            if cbytes != len(raw):
                return (f"{where} unreadable (truncated or padded: {len(raw)} bytes stored, its "
                        f"blosc header says {cbytes})")
            if nbytes != expected:
                return f"{where} unreadable (decodes to {nbytes} bytes, a chunk holds {expected})"
            try:
                decoded = codec.decode(raw)
            except Exception as err:  # noqa: BLE001 - any decode failure is a corrupt chunk
                return f"{where} unreadable ({type(err).__name__}: {err})"
            if memoryview(decoded).nbytes != expected:
                return f"{where} unreadable (decoded {memoryview(decoded).nbytes} bytes, expected {expected})"
    return None
