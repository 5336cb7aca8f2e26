"""Is a subject-stage still what its upstream stages say? One answer for the runner, verify and train.

A stage names its inputs by what it reads from the store (see :mod:`store_schema.contract.layout`):

* ``eeg``: ``{"ingest": <ingest fingerprint>}``; ``segment``: ``{"eeg": ...}``;
  ``tokens``: ``{"faces": ...}`` (the upstream stage by name, its commit fingerprint);
* ``faces`` (``reads_segment_table``): ``{"segment_table": store.segment_table_fingerprint(s)}``,
  which windows of which video, not the EEG, so a new filter that keeps the windows keeps the faces.

Other inputs (files, models) are not in the store and are not checked here.
:func:`find_stale_input` / :func:`stale_inputs` compare a mapping of inputs (the one a run is
about to record, or a recorded one) with the store now; :func:`stale_reason` does it for a
committed subject-stage's record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from store_schema.contract.layout import SEGMENT_TABLE_INPUT, Stage, stage_path, stage_spec
from store_schema.engine.store import FeatureStore


def upstream_input_names(stage: Stage | str) -> dict[str, Stage]:
    """Input name -> the upstream stage it fingerprints, for every upstream of ``stage``."""
    spec = stage_spec(stage)
    return {(SEGMENT_TABLE_INPUT if spec.reads_segment_table else upstream.value): upstream
            for upstream in spec.upstream}


def current_input(store: FeatureStore, subject: int, stage: Stage | str, name: str) -> str | None:
    """What input ``name`` of ``stage`` would be named now; ``None`` when its upstream is not committed."""
    upstream = upstream_input_names(stage)[name]
    record = store.record(subject, upstream)
    if record is None:
        return None
    return store.segment_table_fingerprint(subject) if name == SEGMENT_TABLE_INPUT else record.fingerprint


@dataclass(frozen=True)
class StaleInput:
    """One upstream input that no longer matches the store."""

    name: str
    upstream: Stage
    committed: bool
    """False: the upstream stage is not committed now; True: it was recomputed (or never named)."""
    named: bool = True
    """False: the inputs do not name this upstream at all."""

    def __str__(self) -> str:
        if not self.named:
            return (f"its record names no '{self.name}' input, so it cannot be checked against "
                    f"upstream stage '{self.upstream.value}'")
        if not self.committed:
            return f"upstream stage '{self.upstream.value}' is not committed"
        if self.name == SEGMENT_TABLE_INPUT:
            return "the segment table changed after it was computed"
        return f"upstream stage '{self.upstream.value}' was recomputed after it"


def find_stale_input(
    store: FeatureStore, subject: int, stage: Stage | str, inputs: Mapping[str, str],
    *, require_all: bool = False,
) -> StaleInput | None:
    """The first upstream input named in ``inputs`` that does not match the store now, or
    ``None``. ``require_all``: an upstream input that ``inputs`` does not name counts as stale
    (a record that does not follow the contract)."""
    stage = Stage(stage)
    for name, upstream in upstream_input_names(stage).items():
        if name not in inputs:
            if require_all:
                return StaleInput(name, upstream, committed=store.record(subject, upstream) is not None,
                                  named=False)
            continue
        now = current_input(store, subject, stage, name)
        if now != inputs[name]:
            return StaleInput(name, upstream, committed=now is not None)
    return None


def stale_inputs(
    store: FeatureStore, subject: int, stage: Stage | str, inputs: Mapping[str, str],
    *, require_all: bool = False,
) -> str | None:
    """:func:`find_stale_input` as one line (``None`` when every named input is current)."""
    found = find_stale_input(store, subject, stage, inputs, require_all=require_all)
    return None if found is None else str(found)


def stale_reason(store: FeatureStore, subject: int, stage: Stage | str) -> str | None:
    """``None`` when the committed subject-stage's recorded inputs still match its upstream
    records, else why not (also when it is not committed at all)."""
    record = store.record(subject, stage)
    if record is None:
        return f"{stage_path(subject, stage)} is not committed"
    return stale_inputs(store, subject, stage, record.inputs, require_all=True)
