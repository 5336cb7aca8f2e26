"""``milmer preprocess --plan``: what a run would recompute and why, without starting Prefect."""

from __future__ import annotations

import os
import time

from pydantic import BaseModel

from flows.config import PreprocessConfig
from flows.summary import RunSummary
from pipeline.ingest import requested_subjects
from pipeline.stage_table import STAGE_TABLE
from store_schema.layout import Stage, ancestors
from store_schema.plan import PlanEntry, plan_stage
from store_schema.runner import StageOutcome
from store_schema.table import StageContext


class RunPlan(BaseModel):
    entries: list[PlanEntry]

    @property
    def up_to_date(self) -> bool:
        return all(e.action == "up to date" for e in self.entries)

    def counts(self) -> dict[str, int]:
        return {k: sum(e.action == k for e in self.entries)
                for k in ("up to date", "would compute", "cannot run")}

    def lines(self) -> list[str]:
        """One line per subject-stage, then the counts."""
        out = [f"s{e.subject:02d} {e.stage.value:<8} {e.action}" + (f": {e.reason}" if e.reason else "")
               for e in self.entries]
        out.append(", ".join(f"{n} {k}" for k, n in self.counts().items()))
        return out


def plan_run(config: PreprocessConfig) -> RunPlan:
    """The plan of ``config``'s run: every requested subject-stage, in run order."""
    store = config.open_store()
    entries: list[PlanEntry] = []
    for subject in requested_subjects(config.deap, config.subjects, source=config.ingest.source):
        changed: dict[Stage, PlanEntry] = {}
        for stage in config.stages:
            blocked = next((changed[s] for s in reversed(ancestors(stage)) if s in changed), None)
            if blocked is not None and blocked.action == "cannot run":
                entry = PlanEntry(subject=subject, stage=stage, action="cannot run",
                                  reason=f"upstream '{blocked.stage.value}' cannot run")
            else:
                entry = plan_stage(
                    store, STAGE_TABLE[stage], params=config.stage_params(stage),
                    context=StageContext(subject=subject, deap=config.deap,
                                         content_hash=config.content_hash),
                    force=config.force, upstream_recomputed=blocked.stage if blocked else None)
            if entry.action != "up to date":
                changed[stage] = entry
            entries.append(entry)
    return RunPlan(entries=entries)


def summary_if_up_to_date(config: PreprocessConfig) -> RunSummary | None:
    """Every subject-stage as skipped when nothing needs computing and no Prefect server is
    configured (so a run would only start Prefect's temporary API, ~10 s, to skip everything);
    ``None`` otherwise. Imports no Prefect: an up-to-date `milmer preprocess` returns in ~1 s."""
    if os.environ.get("PREFECT_API_URL"):
        return None  # a configured server records every run, this one too
    started = time.perf_counter()
    plan = plan_run(config)
    if not plan.up_to_date:
        return None
    seconds = (time.perf_counter() - started) / max(1, len(plan.entries))
    return RunSummary(
        outcomes=[StageOutcome(subject=e.subject, stage=e.stage, status="skipped", seconds=seconds,
                               fingerprint=e.fingerprint) for e in plan.entries],
        note="up to date: nothing to recompute (Prefect not started)")
