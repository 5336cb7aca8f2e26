"""The one run graph: which subject-stages a run holds, in what order, and which earlier
subject-stage of the same run each one waits on.

The Prefect flow, the inline runner and ``--plan`` all walk :func:`run_graph` with
:func:`walk`: each node gets the result of its upstream-in-run (a Prefect future, an outcome, a
plan entry) and decides from it; "blocked by upstream" is decided from that one value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from store_schema.contract.layout import Stage, ancestors

T = TypeVar("T")


@dataclass(frozen=True)
class SubjectStage:
    """One node of a run: a subject-stage and the stage of this run it waits on."""

    subject: int
    stage: Stage
    upstream: Stage | None
    """The nearest earlier stage of the run that ``stage`` reads, directly or through its
    upstreams in the store layout (faces → segment; faces → ingest when only ingest and faces
    run). None: it reads only committed records of stages this run does not touch."""


def upstream_in_run(stages: Sequence[Stage], stage: Stage) -> Stage | None:
    """See :attr:`SubjectStage.upstream`."""
    reads = set(ancestors(stage))
    earlier = stages[: list(stages).index(stage)]
    return next((s for s in reversed(earlier) if s in reads), None)


def run_graph(subjects: Iterable[int], stages: Sequence[Stage], *,
              stage_major: bool = False) -> Iterator[SubjectStage]:
    """Every subject-stage of a run, each after its upstream-in-run: subject by subject (a
    subject's stages in pipeline order), or ``stage_major`` (every subject's first stage, then
    every subject's second, ...: the order a task runner is fed in, so that no task waits on one
    not yet queued)."""
    subjects = list(subjects)
    nodes = [[SubjectStage(subject, stage, upstream_in_run(stages, stage)) for stage in stages]
             for subject in subjects]
    if stage_major:
        for column in range(len(stages)):
            for row in nodes:
                yield row[column]
    else:
        for row in nodes:
            yield from row


def walk(graph: Iterable[SubjectStage], step: Callable[[SubjectStage, T | None], T]) -> list[T]:
    """``step(node, result of its upstream-in-run or None)`` for every node, in graph order;
    the results in the same order."""
    done: dict[tuple[int, Stage], T] = {}
    results: list[T] = []
    for node in graph:
        upstream = done[(node.subject, node.upstream)] if node.upstream is not None else None
        done[(node.subject, node.stage)] = result = step(node, upstream)
        results.append(result)
    return results
