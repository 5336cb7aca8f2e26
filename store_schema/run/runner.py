"""The one generic subject-stage runner: name inputs, skip, lock, read, compute, write, commit.

Every stage of the pipeline goes through :func:`run_row` with its row of the stage table
(:mod:`store_schema.contract.table`): the runner names its inputs (upstream records, then the row's own
``prepare``), decides whether to compute at all (fingerprint match → skipped without loading any
input), reads what the row declares, calls the row's pure function, validates, writes and commits
through :func:`run_stage`, and turns any failure into a ``failed`` outcome that names the problem,
so one subject never stops the others. A failed stage writes nothing: what was committed before
stays. Every outcome is built here, through :class:`StageOutcome`'s constructors.

Concurrent runs on one store: before computing, the runner takes the subject-stage's lock
(exclusive) and its upstream subject-stages' locks (shared; see :mod:`store_schema.engine.locks`), then
looks at the commit record again. A run that waited for another one to compute the same
subject-stage therefore finds that commit and skips; its outcome says how long it waited and for
whom. Under the lock it also checks that the upstream records still have the fingerprints its
inputs were named from: if another run rewrote an upstream stage meanwhile, the stage fails as
*transient* (a retry names the inputs again) instead of committing data that does not match its
record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from store_schema.errors import MilmerError, StoreError
from store_schema.contract.fingerprint import library_versions, stage_fingerprint
from store_schema.engine.failpoints import failpoint
from store_schema.contract.layout import Stage, ancestors, stage_path
from store_schema.engine.locks import LockWait, subject_stage_lock
from store_schema.contract.staleness import current_input, find_stale_input, upstream_input_names
from store_schema.engine.store import FeatureStore
from store_schema.contract.table import Prepared, Read, StageContext, StageProgress, StageRow

log = logging.getLogger(__name__)

Status = Literal["computed", "skipped", "failed"]


@dataclass
class StageOutput:
    """What a stage's compute function returns."""

    arrays: dict[str, np.ndarray]
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """Problems that did not stop the stage (e.g. an unreadable video), for the run summary."""


class StageOutcome(BaseModel):
    """What happened to one subject-stage in one run."""

    model_config = ConfigDict(frozen=True)

    subject: int
    stage: Stage
    status: Status
    seconds: float
    fingerprint: str | None = None
    error: str | None = None
    transient: bool = False
    """The failure was an I/O error of the environment (worth a retry), not of the data."""
    warnings: list[str] = []
    """Problems of a computed stage that did not stop it (named file and reason)."""
    waited_seconds: float = 0.0
    """Time spent waiting for subject-stage locks held by another run or task."""
    waited_for: list[str] = []
    """Who held them: ``subjects/s01/eeg held by another run (pid 4242 on host, ...)``."""

    @classmethod
    def failed(cls, subject: int, stage: Stage, error: Exception | str, *, seconds: float = 0.0,
               **fields: Any) -> StageOutcome:
        """A failure: an exception (described, transient or not) or a message."""
        if isinstance(error, Exception):
            fields.setdefault("transient", is_transient(error))
            error = describe_error(error)
        return cls(subject=subject, stage=stage, status="failed", seconds=seconds, error=error,
                   **fields)

    @classmethod
    def not_run(cls, subject: int, stage: Stage, upstream: Stage | str) -> StageOutcome:
        """Not attempted: the upstream subject-stage of this run failed."""
        return cls.failed(subject, stage, f"not run: '{Stage(upstream).value}' failed")

    @property
    def name(self) -> str:
        """``s01 eeg``: how progress and logs name the subject-stage."""
        return f"s{self.subject:02d} {self.stage.value}"

    def line(self) -> str:
        """One line for a log: ``s01 eeg: computed in 3.8 s``, the error, the wait."""
        wait = self.wait_note()
        return (f"{self.name}: {self.status} in {self.seconds:.1f} s"
                + (f" ({self.error})" if self.error else "") + (f" ({wait})" if wait else ""))

    def wait_note(self) -> str | None:
        """``waited 3.2 s for subjects/s01/eeg held by ...`` or ``None`` when it did not wait."""
        if not self.waited_for:
            return None
        return f"waited {self.waited_seconds:.1f} s for " + "; ".join(self.waited_for)


class UpstreamChanged(StoreError):
    """An upstream subject-stage was rewritten (by another run) after this stage named its inputs."""


class UpstreamMissing(StoreError):
    """An upstream subject-stage is not committed: this stage has nothing to read."""


def run_row(
    store: FeatureStore, row: StageRow, *, params: BaseModel, context: StageContext,
    force: bool = False,
) -> StageOutcome:
    """Run one subject-stage of the stage table, unless the store already holds it."""
    started = time.perf_counter()
    subject, stage = context.subject, row.stage
    read = subject_reader(store, subject)
    try:
        prepared, key = identify(store, row, params=params, context=context)
    except Exception as err:  # noqa: BLE001 - a missing input is this subject's failure only
        if not _is_expected(err):
            log.exception("s%02d %s: naming its inputs failed unexpectedly", subject, stage.value)
        return StageOutcome.failed(subject, stage, err, seconds=time.perf_counter() - started)

    def compute() -> StageOutput:
        kwargs = {name: read(spec) for name, spec in row.reads.items()}
        kwargs.update(prepared.kwargs)
        arrays, extra = row.load_function()(params=prepared.params,
                                            progress=_progress(context, stage), **kwargs)
        return StageOutput(arrays=arrays, extra=extra,
                           warnings=row.warnings(extra) if row.warnings else [])

    return run_stage(store, subject=subject, stage=stage, params=prepared.params,
                     code_version=key.code_version, inputs=key.inputs,
                     compute=compute, libraries=row.libraries(prepared.params), force=force)


@dataclass(frozen=True)
class StageKey:
    """What a subject-stage's fingerprint hashes, and the fingerprint: built by
    :func:`stage_key` alone, for the runner and the plan."""

    stage: Stage
    code_version: str
    params: dict[str, Any]
    """The recorded params as JSON (paths and speed-only settings excluded by their model)."""
    inputs: dict[str, str]
    fingerprint: str


def stage_key(stage: Stage | str, *, params: BaseModel, code_version: str,
              inputs: Mapping[str, str]) -> StageKey:
    """The one fingerprint builder: stage name + code version + params + input fingerprints."""
    stage = Stage(stage)
    params_json = params.model_dump(mode="json")
    return StageKey(stage=stage, code_version=code_version, params=params_json,
                    inputs=dict(inputs),
                    fingerprint=stage_fingerprint(stage=stage.value, code_version=code_version,
                                                  params=params_json, inputs=inputs))


def identify(
    store: FeatureStore, row: StageRow, *, params: BaseModel, context: StageContext,
) -> tuple[Prepared, StageKey]:
    """The row's settings made concrete and its key: every input it records (upstream records,
    then the row's own ``prepare``) and the fingerprint, as the runner and the plan both name
    them. Cheap; may raise."""
    upstream = upstream_inputs(store, context.subject, row.stage)
    prepared = (row.prepare(params, context, subject_reader(store, context.subject))
                if row.prepare else Prepared(params=params))
    return prepared, stage_key(row.stage, params=prepared.params, code_version=row.code_version,
                               inputs={**upstream, **prepared.inputs})


def upstream_inputs(store: FeatureStore, subject: int, stage: Stage | str) -> dict[str, str]:
    """The inputs a stage records for its upstream subject-stages (see
    :mod:`store_schema.contract.staleness`). Raises :class:`UpstreamMissing`."""
    inputs: dict[str, str] = {}
    for name, upstream in upstream_input_names(stage).items():
        now = current_input(store, subject, stage, name)
        if now is None:
            raise UpstreamMissing(
                f"{store.url}: s{subject:02d}: stage '{upstream.value}' is not committed, so "
                f"'{Stage(stage).value}' cannot run; include '{upstream.value}' in --stages")
        inputs[name] = now
    return inputs


def subject_reader(store: FeatureStore, subject: int) -> Callable[[Read], Any]:
    """Reads a row's :class:`Read` declarations for one subject from committed records."""

    def read(spec: Read) -> Any:
        if spec.array is not None:
            return (store.array(subject, spec.stage, spec.array) if spec.lazy
                    else store.read(subject, spec.stage, spec.array))
        record = store.record(subject, spec.stage)
        if record is None:
            raise UpstreamMissing(
                f"{store.url}: {stage_path(subject, spec.stage)} is not committed (another run "
                "uncommitted it?); run the stages again")
        return record.extra[spec.extra] if spec.extra is not None else record.params[spec.param]
    return read


def _progress(context: StageContext, stage: Stage) -> StageProgress:
    """A stage's progress (a note, a count) goes to the run's reporter; each report is also its
    ``mid-compute`` failpoint."""
    where = stage_path(context.subject, stage)

    def report(line: str = "", /, *, done: int | None = None, total: int | None = None,
               unit: str | None = None) -> None:
        if context.progress is not None:
            context.progress(line, done=done, total=total, unit=unit)
        failpoint(where, "mid-compute")

    return report


def run_stage(
    store: FeatureStore,
    *,
    subject: int,
    stage: Stage | str,
    params: BaseModel,
    code_version: str,
    inputs: Mapping[str, str],
    compute: Callable[[], StageOutput],
    libraries: Iterable[str] = ("numpy",),
    force: bool = False,
) -> StageOutcome:
    """Run one subject-stage unless the store already holds it with the same fingerprint."""
    stage = Stage(stage)
    started = time.perf_counter()
    key = stage_key(stage, params=params, code_version=code_version, inputs=inputs)
    params_json, fingerprint = key.params, key.fingerprint
    existing = store.record(subject, stage)
    if not force and existing is not None and existing.fingerprint == fingerprint:
        # committed already: no lock needed to leave it alone
        return StageOutcome(subject=subject, stage=stage, status="skipped",
                            seconds=time.perf_counter() - started, fingerprint=fingerprint)
    waits = LockWait()

    def outcome(status: Status, **fields: Any) -> StageOutcome:
        return StageOutcome(subject=subject, stage=stage, status=status,
                            seconds=time.perf_counter() - started, waited_seconds=round(waits.seconds, 3),
                            waited_for=list(waits.held_by), **fields)

    def on_wait(message: str) -> None:
        log.warning("s%02d %s: %s", subject, stage.value, message)

    try:
        with subject_stage_lock(store.url, subject, stage, reads=ancestors(stage),
                                on_wait=on_wait) as waits:
            existing = store.record(subject, stage)  # another run may have committed it meanwhile
            if not force and existing is not None and existing.fingerprint == fingerprint:
                return outcome("skipped", fingerprint=fingerprint)
            check_inputs_current(store, subject=subject, stage=stage, inputs=inputs)
            failpoint(stage_path(subject, stage), "before-compute")
            output = compute()
            store.write_stage(
                subject=subject, stage=stage, arrays=output.arrays, params=params_json,
                inputs=inputs, code_version=code_version, libraries=library_versions(libraries),
                wall_seconds=time.perf_counter() - started, extra=output.extra)
    except Exception as err:  # noqa: BLE001 - every failure becomes a named outcome
        if not _is_expected(err):
            log.exception("s%02d %s failed unexpectedly", subject, stage.value)
        return StageOutcome.failed(subject, stage, err, seconds=time.perf_counter() - started,
                                   waited_seconds=round(waits.seconds, 3),
                                   waited_for=list(waits.held_by))
    return outcome("computed", fingerprint=fingerprint, warnings=list(output.warnings))


def check_inputs_current(
    store: FeatureStore, *, subject: int, stage: Stage, inputs: Mapping[str, str]
) -> None:
    """Raise :class:`UpstreamChanged` when an upstream input named in ``inputs`` no longer matches
    the store (called under the locks, so it cannot change again before the commit)."""
    stale = find_stale_input(store, subject, stage, inputs)
    if stale is not None:
        state = "was recomputed" if stale.committed else "is no longer committed"
        raise UpstreamChanged(
            f"{store.url}: {stage_path(subject, stale.upstream)} {state} (by another run) after "
            f"'{stage.value}' named its inputs; run again to use the new one")


def _is_expected(err: Exception) -> bool:
    """Errors raised on purpose carry their own message; others also need a traceback."""
    return isinstance(err, MilmerError)


def is_transient(err: Exception) -> bool:
    """An OS-level I/O failure (network store, NFS hiccup) that a retry may cure.

    The project's own errors are about the data or the parameters: retrying cannot help, except
    :class:`UpstreamChanged` (another run rewrote an input: a retry names the inputs again).
    """
    if isinstance(err, UpstreamChanged):
        return True
    return isinstance(err, (OSError, TimeoutError)) and not isinstance(err, MilmerError)


def describe_error(err: Exception) -> str:
    """One line: the project's own messages as they are, anything else with its type."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text if _is_expected(err) else f"{type(err).__name__}: {text}"
