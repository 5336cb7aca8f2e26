"""The one generic subject-stage runner: fingerprint, skip, compute, write, commit, time, capture.

Every stage goes through :func:`run_stage`. The stage itself is a ``compute`` callable that returns
its arrays; the runner decides whether to call it at all (fingerprint match → skipped without
loading any input) and turns any failure into a ``failed`` outcome that names the problem, so one
subject never stops the others. A failed stage writes nothing: what was committed before stays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from store_schema.errors import MilmerError
from store_schema.fingerprint import library_versions, stage_fingerprint
from store_schema.failpoints import failpoint
from store_schema.layout import Stage, stage_path
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
        return StageOutcome(subject=subject, stage=stage, status="skipped",
                            seconds=time.perf_counter() - started, fingerprint=fingerprint)
    try:
        failpoint(stage_path(subject, stage), "before-compute")
        output = compute()
        store.write_stage(
            subject=subject, stage=stage, arrays=output.arrays, params=params_json, inputs=inputs,
            code_version=code_version, libraries=library_versions(libraries),
            wall_seconds=time.perf_counter() - started, extra=output.extra)
    except Exception as err:  # noqa: BLE001 - every failure becomes a named outcome
        if not _is_expected(err):
            log.exception("s%02d %s failed unexpectedly", subject, stage.value)
        return StageOutcome(subject=subject, stage=stage, status="failed",
                            seconds=time.perf_counter() - started, error=describe_error(err),
                            transient=is_transient(err))
    return StageOutcome(subject=subject, stage=stage, status="computed",
                        seconds=time.perf_counter() - started, fingerprint=fingerprint,
                        warnings=list(output.warnings))


def _is_expected(err: Exception) -> bool:
    """Errors raised on purpose carry their own message; others also need a traceback."""
    return isinstance(err, MilmerError)


def is_transient(err: Exception) -> bool:
    """An OS-level I/O failure (network store, NFS hiccup) that a retry may cure.

    The project's own errors are about the data or the parameters: retrying cannot help.
    """
    return isinstance(err, (OSError, TimeoutError)) and not isinstance(err, MilmerError)


def describe_error(err: Exception) -> str:
    """One line: the project's own messages as they are, anything else with its type."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text if _is_expected(err) else f"{type(err).__name__}: {text}"
