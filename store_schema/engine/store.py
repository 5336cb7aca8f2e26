"""Open, write, commit and read the Zarr feature store.

Writers go through :meth:`FeatureStore.write_stage`, which validates every array against the
layout in :mod:`store_schema.contract.layout` and commits last. Readers (``train``, ``store info``) go
through :meth:`FeatureStore.record` and :meth:`FeatureStore.array`, which only ever show committed
subject-stages.

Write order of a subject-stage, so that a crash at any point leaves nothing that looks complete:

1. drop the old commit record (an atomic rewrite of the group's ``zarr.json``);
2. delete the old group, create it anew, write every array (chunks written even when empty, so a
   missing chunk file is always an error that ``verify`` can see);
3. on a local store, fsync every file and folder of the subject-stage (:mod:`store_schema.engine.durable`);
4. write the commit record into the group's attributes, last (on a local store: a temporary file,
   fsynced, renamed over ``zarr.json``, its folder fsynced).
"""

from __future__ import annotations

import datetime as dt
import errno
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from pydantic import BaseModel, ConfigDict, ValidationError

from store_schema.engine.durable import durable_by_default, fsync_parents, fsync_tree, replace_json_durably
from store_schema.errors import StoreError, StoreWriteError
from store_schema.engine.failpoints import failpoint
from store_schema.contract.fingerprint import digest, stage_fingerprint
from store_schema.contract.layout import (
    FIXED_DIMS,
    SEGMENT_TABLE_FOR_FACES,
    SCHEMA_CHANGES,
    SCHEMA_VERSION,
    STAGE_ORDER,
    Stage,
    StageSpec,
    stage_path,
    stage_spec,
)

COMMIT_ATTR = "commit"
_REFUSED_WRITES = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                   errno.EPERM: "permission denied", errno.EFBIG: "file too large"}
COMPRESSOR = {"name": "blosc", "cname": "lz4", "clevel": 5, "shuffle": "shuffle"}
"""blosc-lz4: the fastest codec measured on these arrays (random float16 tokens barely compress)."""


class ArrayRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    shape: tuple[int, ...]
    dtype: str


class StageRecord(BaseModel):
    """What a committed subject-stage says about itself (its ``commit`` attribute)."""

    model_config = ConfigDict(frozen=True)

    stage: Stage
    subject: int
    schema_version: int
    code_version: str
    params: dict[str, Any]
    inputs: dict[str, str]
    fingerprint: str
    libraries: dict[str, str]
    completed_at: str
    wall_seconds: float
    arrays: dict[str, ArrayRecord]
    extra: dict[str, Any] = {}

    def expected_fingerprint(self) -> str:
        """The fingerprint its recorded stage, code version, parameters and inputs give."""
        return stage_fingerprint(stage=self.stage.value, code_version=self.code_version,
                                 params=self.params, inputs=self.inputs)


StageState = Literal["committed", "uncommitted", "absent"]


class FeatureStore:
    """A Zarr v3 feature store at a local path or any fsspec URL."""

    def __init__(self, root: zarr.Group, url: str, *, durable: bool = True) -> None:
        self._root = root
        self.url = url
        self.durable = durable
        """Flush each subject-stage to disk before its commit (local stores only; see
        :mod:`store_schema.engine.durable`)."""

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        mode: Literal["r", "a"] = "a",
        storage_options: Mapping[str, Any] | None = None,
        durable: bool | None = None,
    ) -> FeatureStore:
        """Open a store; with ``mode="a"`` create it when it does not exist.

        ``durable`` (default: on unless ``MILMER_FSYNC=0``): fsync each subject-stage's files
        before its commit record, and the record after it, on a local or NFS store.

        Raises :class:`StoreError` for a folder that is not a feature store or one written by a
        newer schema version.
        """
        url = str(url)
        options = dict(storage_options) if storage_options else None
        try:
            root = zarr.open_group(url, mode="r" if mode == "r" else "a",
                                   storage_options=options)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
            raise StoreError(f"{url}: no feature store here ({err})") from None
        except (FileExistsError, NotADirectoryError):
            raise StoreError(f"{url}: is a file, not a feature store folder") from None
        except (ValueError, zarr.errors.ContainsArrayError) as err:
            raise StoreError(f"{url}: not a Zarr v3 feature store ({err})") from None
        attrs = root.attrs.asdict()
        if "schema_version" not in attrs:
            if mode == "r" or any(True for _ in root.members()):
                raise StoreError(f"{url}: not a milmer feature store (no schema_version attribute)")
            root.attrs.update({"schema_version": SCHEMA_VERSION, "created_by": "milmer-deap",
                               "compressor": COMPRESSOR})
            root.require_group("subjects")
        elif attrs["schema_version"] > SCHEMA_VERSION:
            raise StoreError(
                f"{url}: made by a newer schema version ({attrs['schema_version']}) than this "
                f"milmer-deap reads ({SCHEMA_VERSION}); upgrade milmer-deap")
        elif attrs["schema_version"] < SCHEMA_VERSION:
            changes = "; ".join(f"version {v}: {SCHEMA_CHANGES[v]}" for v in sorted(SCHEMA_CHANGES)
                                if attrs["schema_version"] < v)
            raise StoreError(
                f"{url}: made by an older schema version ({attrs['schema_version']}, this "
                f"milmer-deap reads {SCHEMA_VERSION}; {changes}); rebuild it with "
                "`milmer preprocess` into a new store")
        return cls(root, url, durable=durable_by_default() if durable is None else durable)

    @property
    def schema_version(self) -> int:
        return int(self._root.attrs["schema_version"])

    # -- reading ---------------------------------------------------------------------------

    def subjects(self) -> list[int]:
        """Subjects with at least one subject-stage group (committed or not)."""
        if "subjects" not in self._root:
            return []
        keys = self._root["subjects"].group_keys()
        return sorted(int(k[1:]) for k in keys if k.startswith("s") and k[1:].isdigit())

    def _group(self, subject: int, stage: Stage | str) -> zarr.Group | None:
        try:
            node = self._root[stage_path(subject, stage)]
        except KeyError:
            return None
        return node if isinstance(node, zarr.Group) else None

    def record(self, subject: int, stage: Stage | str) -> StageRecord | None:
        """The commit record of a subject-stage, or ``None`` if it is not committed."""
        group = self._group(subject, stage)
        if group is None:
            return None
        raw = group.attrs.get(COMMIT_ATTR)
        if raw is None:
            return None
        try:
            return StageRecord.model_validate(raw)
        except ValidationError:
            return None  # a record this version cannot read counts as not committed

    def state(self, subject: int, stage: Stage | str) -> StageState:
        group = self._group(subject, stage)
        if group is None:
            return "absent"
        return "committed" if self.record(subject, stage) is not None else "uncommitted"

    def committed_subjects(self, stage: Stage | str) -> list[int]:
        return [s for s in self.subjects() if self.record(s, stage) is not None]

    def array(self, subject: int, stage: Stage | str, name: str) -> zarr.Array:
        """A committed array. Raises :class:`StoreError` for anything not committed."""
        if self.record(subject, stage) is None:
            raise StoreError(
                f"{self.url}: {stage_path(subject, stage)} is not committed; run "
                "`milmer preprocess` for this subject first")
        stage_spec(stage).array(name)  # unknown names are a programming error: KeyError
        group = self._group(subject, stage)
        assert group is not None
        try:
            node = group[name]
        except KeyError:
            raise StoreError(f"{self.url}: {stage_path(subject, stage)}/{name} is missing; "
                             "run `milmer store verify`") from None
        assert isinstance(node, zarr.Array)
        return node

    def read(self, subject: int, stage: Stage | str, name: str) -> np.ndarray:
        return np.asarray(self.array(subject, stage, name)[...])

    def read_rows(self, stage: Stage | str, name: str, subjects: np.ndarray,
                  rows: np.ndarray) -> np.ndarray:
        """Row ``rows[i]`` (first axis) of subject ``subjects[i]``'s committed array, stacked in
        that order: a random training batch. Every row is fetched at once on Zarr's async loop
        (per-row reads of one-row chunks gathered concurrently: ~10x ``oindex`` on this layout)."""
        import asyncio

        from zarr.core.sync import sync

        if len(subjects) != len(rows) or not len(rows):
            raise ValueError(f"read_rows: {len(subjects)} subjects for {len(rows)} rows")
        arrays = {s: self.array(s, stage, name).async_array for s in dict.fromkeys(map(int, subjects))}

        async def gather() -> list[Any]:
            return await asyncio.gather(*(arrays[int(s)].getitem(int(r)) for s, r in zip(subjects, rows)))

        return np.stack([np.asarray(row) for row in sync(gather())])

    def segment_table_fingerprint(self, subject: int) -> str:
        """Fingerprint of what the face stage reads from the segment stage: which window of which
        video (not the EEG), so switching the EEG source or filter does not redo the faces."""
        record = self.record(subject, Stage.segment)
        if record is None:
            raise StoreError(f"{self.url}: {stage_path(subject, Stage.segment)} is not committed")
        columns = {name: self.read(subject, Stage.segment, name).tolist()
                   for name in SEGMENT_TABLE_FOR_FACES}
        return "table:" + digest({"columns": columns, "window_s": record.params.get("window_s")})

    def read_stage(self, subject: int, stage: Stage | str) -> dict[str, np.ndarray]:
        return {spec.name: self.read(subject, stage, spec.name) for spec in stage_spec(stage).arrays}

    def stage_group(self, subject: int, stage: Stage | str) -> zarr.Group | None:
        """The raw group of a subject-stage, committed or not (for verify and info)."""
        return self._group(subject, stage)

    def iter_stages(self) -> Iterator[tuple[int, Stage, StageState]]:
        for subject in self.subjects():
            for stage in STAGE_ORDER:
                yield subject, stage, self.state(subject, stage)

    # -- writing ---------------------------------------------------------------------------

    def uncommit(self, subject: int, stage: Stage | str) -> None:
        """Drop a subject-stage's commit record; its arrays become invisible to readers."""
        group = self._group(subject, stage)
        if group is None or COMMIT_ATTR not in group.attrs:
            return
        folder = self._durable_folder(stage_path(subject, stage))
        if folder is not None:
            replace_json_durably(folder / "zarr.json",
                                 lambda document: document.get("attributes", {}).pop(COMMIT_ATTR, None))
            return
        attrs = group.attrs.asdict()
        attrs.pop(COMMIT_ATTR)
        group.attrs.put(attrs)  # one atomic rewrite of zarr.json

    def _durable_folder(self, path: str) -> Path | None:
        """The folder of ``path`` when this store is durable and on a local file system."""
        store = self._root.store
        if not self.durable or not isinstance(store, zarr.storage.LocalStore):
            return None
        return Path(store.root) / path

    def write_stage(
        self,
        *,
        subject: int,
        stage: Stage | str,
        arrays: Mapping[str, np.ndarray],
        params: Mapping[str, Any],
        inputs: Mapping[str, str],
        code_version: str,
        libraries: Mapping[str, str],
        wall_seconds: float,
        extra: Mapping[str, Any] | None = None,
    ) -> StageRecord:
        """Validate, write and commit one subject-stage, replacing what was there."""
        stage = Stage(stage)
        spec = stage_spec(stage)
        shapes = validate_arrays(spec, arrays, where=f"{self.url}: {stage_path(subject, stage)}")
        path = stage_path(subject, stage)
        failpoint(path, "before-write")
        try:
            return self._write_and_commit(subject, stage, spec, arrays, shapes, params=params,
                                          inputs=inputs, code_version=code_version,
                                          libraries=libraries, wall_seconds=wall_seconds,
                                          extra=extra)
        except OSError as err:
            if err.errno not in _REFUSED_WRITES:
                raise  # e.g. a network store's hiccup: the runner reports it as transient
            self._drop_partial(subject, stage)
            raise StoreWriteError(
                f"{self.url}: cannot write {path}: {_REFUSED_WRITES[err.errno]} "
                f"({err.strerror}: {err.filename or self.url}); nothing of it was committed and "
                "committed subject-stages are intact; fix that and re-run") from None

    def _write_and_commit(
        self, subject: int, stage: Stage, spec: StageSpec, arrays: Mapping[str, np.ndarray],
        shapes: dict[str, tuple[int, ...]], *, params: Mapping[str, Any],
        inputs: Mapping[str, str], code_version: str, libraries: Mapping[str, str],
        wall_seconds: float, extra: Mapping[str, Any] | None,
    ) -> StageRecord:
        path = stage_path(subject, stage)
        failpoint(path, "write-error")
        folder = self._durable_folder(path)
        self.uncommit(subject, stage)
        if self._group(subject, stage) is not None:
            del self._root[path]
            if folder is not None:
                fsync_parents(folder, up_to=folder.parent)  # the old group's removal is on disk
        group = self._root.require_group(path)
        group.attrs.update({"stage": stage.value, "writing_since": _now()})
        compressor = zarr.codecs.BloscCodec(
            cname=COMPRESSOR["cname"], clevel=COMPRESSOR["clevel"], shuffle=COMPRESSOR["shuffle"])
        for array_spec in spec.arrays:
            data = np.asarray(arrays[array_spec.name], dtype=array_spec.dtype)
            target = group.create_array(
                array_spec.name, shape=data.shape, dtype=array_spec.dtype,
                chunks=array_spec.chunk_shape(data.shape), compressors=compressor,
                fill_value=0, config={"write_empty_chunks": True},
                dimension_names=array_spec.dims)
            _write_in_slabs(target, data, where=path)
        failpoint(path, "after-arrays")
        if folder is not None:
            fsync_tree(folder, up_to=Path(self._root.store.root))
        record = StageRecord(
            stage=stage, subject=subject, schema_version=SCHEMA_VERSION, code_version=code_version,
            params=dict(params), inputs=dict(inputs),
            fingerprint=stage_fingerprint(stage=stage.value, code_version=code_version,
                                          params=params, inputs=inputs),
            libraries=dict(libraries), completed_at=_now(), wall_seconds=round(wall_seconds, 3),
            arrays={name: ArrayRecord(shape=shape, dtype=spec.array(name).dtype)
                    for name, shape in shapes.items()},
            extra=dict(extra or {}),
        )
        committed = record.model_dump(mode="json")
        if folder is not None:
            replace_json_durably(folder / "zarr.json",
                                 lambda document: document.setdefault("attributes", {}).update(
                                     {COMMIT_ATTR: committed}))
        else:
            group.attrs.update({COMMIT_ATTR: committed})
        return record

    def _drop_partial(self, subject: int, stage: Stage) -> None:
        """Remove an uncommitted group after a refused write, to give back the space it took;
        on a read-only store this fails too, and the uncommitted group is harmless."""
        if self.record(subject, stage) is not None:
            return
        try:
            if self._group(subject, stage) is not None:
                del self._root[stage_path(subject, stage)]
        except OSError:
            pass


def validate_arrays(
    spec: StageSpec, arrays: Mapping[str, np.ndarray], *, where: str
) -> dict[str, tuple[int, ...]]:
    """Check names, dtypes and shapes against the layout; return each array's shape."""
    expected = {a.name for a in spec.arrays}
    if set(arrays) != expected:
        missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
        raise StoreError(f"{where}: arrays do not match the schema (missing {missing}, unexpected {extra})")
    sizes: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for array_spec in spec.arrays:
        data = np.asarray(arrays[array_spec.name])
        if not np.can_cast(data.dtype, array_spec.dtype, casting="same_kind"):
            raise StoreError(f"{where}/{array_spec.name}: dtype {data.dtype} cannot be stored as "
                             f"{array_spec.dtype}")
        if data.ndim != len(array_spec.dims):
            raise StoreError(f"{where}/{array_spec.name}: shape {data.shape} has {data.ndim} dims, "
                             f"the schema says {len(array_spec.dims)} {array_spec.dims}")
        for dim, n in zip(array_spec.dims, data.shape):
            want = FIXED_DIMS.get(dim, sizes.get(dim))
            if want is not None and n != want:
                raise StoreError(f"{where}/{array_spec.name}: dim '{dim}' is {n}, expected {want} "
                                 f"(shape {data.shape}, dims {array_spec.dims})")
            sizes[dim] = n
        shapes[array_spec.name] = tuple(int(n) for n in data.shape)
    return shapes


def _write_in_slabs(target: zarr.Array, data: np.ndarray, *, where: str) -> None:
    """Write ``data`` one chunk-slab (along the first axis) at a time.

    A slab is whole chunks, so each chunk file is written once; the ``mid-array`` failpoint fires
    after the first slab of an array that has more than one, i.e. with a half-written array on disk.
    """
    if not data.size:
        return
    if data.ndim == 0:
        target[...] = data
        return
    step = target.chunks[0]
    for start in range(0, data.shape[0], step):
        target[start : start + step] = data[start : start + step]
        if start == 0 and data.shape[0] > step:
            failpoint(where, "mid-array")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
