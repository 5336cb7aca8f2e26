"""What a run would recompute, and why, without computing or starting anything.

For one subject-stage :func:`plan_stage` names the inputs exactly as the runner would
(:func:`store_schema.run.runner.identify`, the one fingerprint builder) and compares it with the commit record. The reason says what differs: the stage is new, a
parameter changed (from what to what), an input file or model changed, an upstream is recomputed
in the same run, the stage's code version was bumped, or ``--force``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from store_schema.errors import MilmerError
from store_schema.run.runner import describe_error, identify
from store_schema.engine.store import FeatureStore, StageRecord
from store_schema.contract.table import StageContext, StageRow
from store_schema.contract.layout import SEGMENT_TABLE_INPUT, Stage, stage_spec

Action = Literal["up to date", "would compute", "cannot run"]


class PlanEntry(BaseModel):
    """One subject-stage of a plan."""

    model_config = ConfigDict(frozen=True)

    subject: int
    stage: Stage
    action: Action
    reason: str = ""
    """Why it would compute (or cannot run); empty when up to date."""
    fingerprint: str | None = None
    """The committed fingerprint, when up to date."""


def plan_stage(
    store: FeatureStore, row: StageRow, *, params: BaseModel, context: StageContext,
    force: bool = False, upstream_recomputed: Stage | None = None,
) -> PlanEntry:
    """``upstream_recomputed``: a stage this run recomputes before this one (so its inputs are
    not known yet, and it is recomputed in turn)."""
    subject, stage = context.subject, row.stage
    record = store.record(subject, stage)

    def entry(action: Action, reason: str = "", fingerprint: str | None = None) -> PlanEntry:
        return PlanEntry(subject=subject, stage=stage, action=action, reason=reason,
                         fingerprint=fingerprint)

    if upstream_recomputed is not None:
        why = f"upstream '{upstream_recomputed.value}' recomputed"
        if stage_spec(stage).reads_segment_table:
            why += " (skips at run time if the segment table comes out the same)"
        return entry("would compute", why)
    try:
        _, key = identify(store, row, params=params, context=context)
    except (MilmerError, OSError) as err:  # what the run would report as this stage's failure
        return entry("cannot run", describe_error(err))
    if force:
        return entry("would compute", "forced (--force)")
    if record is None:
        return entry("would compute", "new" if store.state(subject, stage) == "absent"
                     else "new (an earlier run did not commit it)")
    if record.fingerprint == key.fingerprint:
        return entry("up to date", fingerprint=key.fingerprint)
    return entry("would compute", change_reason(record, code_version=key.code_version,
                                                params=key.params, inputs=key.inputs))


def change_reason(record: StageRecord, *, code_version: str, params: dict[str, Any],
                  inputs: dict[str, str]) -> str:
    """What differs between a commit record and the stage as it would run now."""
    reasons = []
    if record.code_version != code_version:
        reasons.append(f"code version bumped from {record.code_version} to {code_version}")
    for key in sorted(set(record.params) | set(params)):
        before, now = record.params.get(key, "(unset)"), params.get(key, "(unset)")
        if before != now:
            reasons.append(f"parameter {key} changed from {_short(before)} to {_short(now)}")
    for key in sorted(set(record.inputs) | set(inputs)):
        if record.inputs.get(key) != inputs.get(key):
            reasons.append(_input_change(key, record.inputs.get(key), inputs.get(key)))
    return "; ".join(reasons) or "fingerprint changed"


def _input_change(name: str, before: str | None, now: str | None) -> str:
    if name in {s.value for s in Stage} or name == SEGMENT_TABLE_INPUT:
        return f"upstream '{name}' was recomputed since"
    if before is None:
        return f"new input {name}"
    if now is None:
        return f"input {name} no longer read"
    if now == "missing":
        return f"input file {name} is missing now"
    return f"input {'model' if name in ('model', 'weights') else 'file'} {name} changed"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
