"""The one generic subject-stage runner: fingerprint, skip, lock, compute, write, commit, time, capture.

Every stage goes through :func:`run_stage`. The stage itself is a ``compute`` callable that returns
its arrays; the runner decides whether to call it at all (fingerprint match → skipped without
loading any input) and turns any failure into a ``failed`` outcome that names the problem, so one
subject never stops the others. A failed stage writes nothing: what was committed before stays.

Concurrent runs on one store: before computing, the runner takes the subject-stage's lock
(exclusive) and its upstream subject-stages' locks (shared; see :mod:`store_schema.locks`), then
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
from store_schema.fingerprint import library_versions, stage_fingerprint
from store_schema.failpoints import failpoint
from store_schema.layout import SEGMENT_TABLE_INPUT, Stage, ancestors, stage_path, stage_spec
from store_schema.locks import LockWait, subject_stage_lock
from store_schema.store import FeatureStore

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

    def wait_note(self) -> str | None:
        """``waited 3.2 s for subjects/s01/eeg held by ...`` or ``None`` when it did not wait."""
        if not self.waited_for:
            return None
        return f"waited {self.waited_seconds:.1f} s for " + "; ".join(self.waited_for)


class UpstreamChanged(StoreError):
    """An upstream subject-stage was rewritten (by another run) after this stage named its inputs."""


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
    params_json = params.model_dump(mode="json")
    fingerprint = stage_fingerprint(stage=stage.value, code_version=code_version,
                                    params=params_json, inputs=inputs)
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
        return outcome("failed", error=describe_error(err), transient=is_transient(err))
    return outcome("computed", fingerprint=fingerprint, warnings=list(output.warnings))


def check_inputs_current(
    store: FeatureStore, *, subject: int, stage: Stage, inputs: Mapping[str, str]
) -> None:
    """Raise :class:`UpstreamChanged` when an upstream input named in ``inputs`` no longer matches
    the store (called under the locks, so it cannot change again before the commit)."""
    spec = stage_spec(stage)
    for upstream in spec.upstream:
        if spec.reads_segment_table and SEGMENT_TABLE_INPUT in inputs:
            now = (store.segment_table_fingerprint(subject)
                   if store.record(subject, upstream) is not None else None)
            name = SEGMENT_TABLE_INPUT
        elif upstream.value in inputs:
            record = store.record(subject, upstream)
            now = record.fingerprint if record is not None else None
            name = upstream.value
        else:
            continue
        if now != inputs[name]:
            state = "is no longer committed" if now is None else "was recomputed"
            raise UpstreamChanged(
                f"{store.url}: {stage_path(subject, upstream)} {state} (by another run) after "
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
