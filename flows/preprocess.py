"""Run the requested subject-stages for every requested subject and summarise what happened.

Per subject the stages run in order (ingest → eeg → segment); a failed stage stops that subject's
later stages and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from flows.config import PreprocessConfig
from flows.stages import eeg_stage, ingest_stage, segment_stage
from pipeline.deap import DeapLayout, find_layout, subjects_in
from pipeline.errors import DeapInputError
from store_schema.layout import Stage
from store_schema.runner import StageOutcome
from store_schema.store import FeatureStore


class RunSummary(BaseModel):
    outcomes: list[StageOutcome]

    @property
    def ok(self) -> bool:
        return all(o.status != "failed" for o in self.outcomes)

    def failures(self) -> list[StageOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def subject_chain(
    config: PreprocessConfig, store: FeatureStore, layout: DeapLayout, subject: int
) -> list[StageOutcome]:
    """Every requested stage of one subject, in order, stopping at the first failure."""
    runners: dict[Stage, Callable[[], StageOutcome]] = {
        Stage.ingest: lambda: ingest_stage(store, layout=layout, subject=subject,
                                           params=config.ingest, content_hash=config.content_hash,
                                           force=config.force),
        Stage.eeg: lambda: eeg_stage(store, subject=subject, params=config.eeg, force=config.force),
        Stage.segment: lambda: segment_stage(store, subject=subject, params=config.segment,
                                             force=config.force),
    }
    outcomes: list[StageOutcome] = []
    for stage in config.stages:
        if outcomes and outcomes[-1].status == "failed":
            outcomes.append(StageOutcome(subject=subject, stage=stage, status="failed", seconds=0.0,
                                         error=f"not run: '{outcomes[-1].stage.value}' failed"))
            continue
        outcomes.append(runners[stage]())
    return outcomes


def requested_subjects(config: PreprocessConfig, layout: DeapLayout) -> list[int]:
    subjects = config.subjects or subjects_in(layout)
    if not subjects:
        raise DeapInputError(layout.root, "no sNN.dat files found: nothing to preprocess")
    return subjects


def run_preprocess(config: PreprocessConfig) -> RunSummary:
    """Plain in-process loop over subjects."""
    store = FeatureStore.open(config.store, storage_options=config.storage_options)
    layout = find_layout(config.deap)
    outcomes = [o for subject in requested_subjects(config, layout)
                for o in subject_chain(config, store, layout, subject)]
    return RunSummary(outcomes=outcomes)
