"""Check that every committed subject-stage is what its commit record says it is."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from store_schema.layout import (
    FIXED_DIMS,
    SCHEMA_VERSION,
    SEGMENT_TABLE_INPUT,
    Stage,
    stage_path,
    stage_spec,
)
from store_schema.store import FeatureStore, StageRecord


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
    for subject, stage, state in store.iter_stages():
        if state == "committed":
            record = store.record(subject, stage)
            assert record is not None
            problems.extend(_check_stage(store, record, read_chunks=read_chunks))
    return problems


def _check_stage(store: FeatureStore, record: StageRecord, *, read_chunks: bool) -> list[StoreProblem]:
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
    for upstream in spec.upstream:
        upstream_record = store.record(subject, upstream)
        if upstream_record is None:
            problem(f"upstream stage '{upstream.value}' is not committed")
        elif spec.reads_segment_table:
            if record.inputs.get(SEGMENT_TABLE_INPUT) != store.segment_table_fingerprint(subject):
                problem("stale: the segment table changed after it was computed")
        elif record.inputs.get(upstream.value) != upstream_record.fingerprint:
            problem(f"stale: upstream stage '{upstream.value}' was recomputed after it")

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
    """Decode the array chunk by chunk (slabs along the first axis, as the layout chunks)."""
    if not array.shape or array.size == 0:
        try:
            array[...]
        except Exception as err:  # noqa: BLE001
            return f"unreadable ({type(err).__name__}: {err})"
        return None
    step = array.chunks[0]
    for start in range(0, array.shape[0], step):
        try:
            array[start : start + step]
        except Exception as err:  # noqa: BLE001 - any decode failure is a corrupt chunk
            return f"chunk at index {start} unreadable ({type(err).__name__}: {err})"
    return None

