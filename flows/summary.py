"""What one preprocess run did: the subject x stage table and its notes, built once.

:meth:`RunSummary.table` and :meth:`RunSummary.notes` are the one description of a run; the
flow's markdown artifact (:meth:`RunSummary.markdown`) and the CLI's terminal table render them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from store_schema.contract.layout import Stage
from store_schema.run.runner import StageOutcome

STATUSES = ("computed", "skipped", "failed")


@dataclass(frozen=True)
class SummaryRow:
    """One subject's row: its outcome per stage column (None where that stage did not run)."""

    subject: int
    cells: list[StageOutcome | None]

    @property
    def label(self) -> str:
        return f"s{self.subject:02d}"


@dataclass(frozen=True)
class SummaryNote:
    """A line below the table: a failure, a warning of a computed stage, or a lock wait."""

    kind: Literal["failed", "warning", "note"]
    outcome: StageOutcome
    text: str

    @property
    def where(self) -> str:
        return f"s{self.outcome.subject:02d} {self.outcome.stage.value}"


def cell_text(outcome: StageOutcome) -> str:
    """``computed 1.2s``: a table cell without markup."""
    return f"{outcome.status} {outcome.seconds:.1f}s"


class RunSummary(BaseModel):
    outcomes: list[StageOutcome]
    note: str | None = None
    """Said once above the table (e.g. that nothing had to be recomputed)."""
    reports: list[str] = []
    """QC report pages written after the run (``--report``), the index last."""
    report_error: str | None = None
    """Why the QC reports could not be written (the run itself is unaffected)."""

    @property
    def ok(self) -> bool:
        return all(o.status != "failed" for o in self.outcomes)

    def failures(self) -> list[StageOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def counts(self) -> dict[str, int]:
        return {k: sum(o.status == k for o in self.outcomes) for k in STATUSES}

    def counts_line(self) -> str:
        """``3 computed, 2 skipped, 0 failed``."""
        return ", ".join(f"{n} {k}" for k, n in self.counts().items())

    def stages(self) -> list[Stage]:
        """The table's columns: every stage that has an outcome, in run order."""
        return list(dict.fromkeys(o.stage for o in self.outcomes))

    def table(self) -> list[SummaryRow]:
        """One row per subject (ascending), one cell per :meth:`stages` column."""
        columns = self.stages()
        by_subject: dict[int, dict[Stage, StageOutcome]] = {}
        for o in self.outcomes:
            by_subject.setdefault(o.subject, {})[o.stage] = o
        return [SummaryRow(subject, [row.get(stage) for stage in columns])
                for subject, row in sorted(by_subject.items())]

    def notes(self) -> list[SummaryNote]:
        """Failures, then warnings, then lock waits (another run or task held a lock this one needed)."""
        notes = [SummaryNote("failed", o, o.error or "") for o in self.failures()]
        notes += [SummaryNote("warning", o, w) for o in self.outcomes for w in o.warnings]
        notes += [SummaryNote("note", o, f"{o.wait_note()}, then {o.status}")
                  for o in self.outcomes if o.wait_note()]
        return notes

    def markdown(self) -> str:
        """The subject x stage table (computed / skipped / failed, seconds) and every note."""
        stages = self.stages()
        lines = ([self.note, ""] if self.note else []) + [
            "| subject | " + " | ".join(s.value for s in stages) + " |",
            "|---|" + "---|" * len(stages)]
        for row in self.table():
            lines.append(f"| {row.label} | "
                         + " | ".join(cell_text(o) if o else "" for o in row.cells) + " |")
        lines += ["", self.counts_line()]
        lines += [f"- **{n.where}** {n.kind}: {n.text}" for n in self.notes()]
        lines += [f"- QC report: {path}" for path in self.reports]
        if self.report_error:
            lines.append(f"- QC reports not written: {self.report_error}")
        return "\n".join(lines)
