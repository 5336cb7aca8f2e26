"""The ``preprocess-deap`` flow: every requested subject-stage as a Prefect task.

Stages of one subject run in order (each task takes its upstream's outcome); subjects run in
parallel on the flow's task runner (threads, processes, or an existing Dask cluster). A failed
subject-stage never stops other subjects: the flow waits for everything, publishes a summary
(a markdown artifact and the returned :class:`RunSummary`) and ends Failed if anything failed.

:func:`run_chain_inline` runs the same subject-stages in a plain loop, without Prefect: the
tests of stage semantics use it, and so can a notebook. Both walk the one run graph
(:mod:`store_schema.run.graph`), as ``--plan`` does.
"""

# No `from __future__ import annotations`: Prefect builds the served flow's parameter schema from
# the real annotation objects (a string "PreprocessConfig" cannot be resolved there).

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from prefect import allow_failure, flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.futures import PrefectFuture, as_completed, wait
from prefect.states import Completed, Failed, State
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from flows.config import PreprocessConfig
from flows.summary import RunSummary
from pipeline.stages.ingest.recording import requested_subjects
from pipeline.stages import STAGE_TABLE
from store_schema.contract.layout import Stage
from store_schema.run import progress
from store_schema.run.graph import SubjectStage, run_graph, walk
from store_schema.run.runner import StageOutcome, run_row
from store_schema.contract.table import StageContext


ONE_AT_A_TIME: frozenset[Stage] = frozenset({Stage.tokens})
"""Stages that hold the accelerator (and every core): never two subjects at once on one machine."""


class TransientStageError(RuntimeError):
    """Raised inside a task so that Prefect retries it (I/O errors of the environment only)."""


def run_subject_stage(
    config: PreprocessConfig, subject: int, stage: Stage, upstream: StageOutcome | None = None,
) -> StageOutcome:
    """One subject-stage, given its upstream's outcome in this run (None for the first stage).

    Its notes and counts go to this process's reporter (a bar on a terminal) and, at debug
    level, to the run's log; its final line is the caller's (:func:`report_outcome`)."""
    if upstream is not None and upstream.status == "failed":
        return StageOutcome.not_run(subject, stage, upstream.stage)
    store = config.open_store()
    name = f"s{subject:02d} {Stage(stage).value}"
    reporter = progress.current()
    reporter.start(name)

    def report(line: str = "", /, *, done: int | None = None, total: int | None = None,
               unit: str | None = None) -> None:
        if line:
            _log_line(f"{name}: {line}")
        reporter.update(name, note=line, done=done, total=total, unit=unit)  # "": no note now

    context = StageContext(subject=subject, deap=config.deap, content_hash=config.content_hash,
                           progress=report)
    return run_row(store, STAGE_TABLE[stage], params=config.stage_params(stage), context=context,
                   force=config.force)


def report_outcome(outcome: StageOutcome) -> None:
    """A subject-stage's end, to this process's reporter: its line, then each warning."""
    reporter = progress.current()
    reporter.finish(outcome.name, outcome.line(), problem=outcome.status == "failed")
    for warning in outcome.warnings:
        reporter.say(f"{outcome.name}: {warning}", problem=True)


def _log_line(line: str) -> None:
    """A stage's note: the Prefect run's log inside a task (debug: a worker's console stays one
    line per subject-stage), else a plain logger."""
    try:
        logger = get_run_logger()
    except Exception:  # noqa: BLE001 - outside a flow run (tests, notebooks)
        logger = logging.getLogger(__name__)
    logger.debug("%s", line)


@task(name="subject-stage", retries=2, retry_delay_seconds=2, persist_result=False)
def subject_stage_task(
    config: PreprocessConfig, subject: int, stage: Stage, upstream: StageOutcome | None = None,
) -> StageOutcome:
    logger = get_run_logger()
    logger.info("s%02d %s: starting", subject, stage.value)  # which worker holds it, now
    outcome = run_subject_stage(config, subject, stage, upstream)
    if outcome.transient:
        progress.current().say(f"{outcome.name}: transient failure, retried if retries are left "
                               f"({outcome.error})", problem=True)
        raise TransientStageError(f"s{subject:02d} {stage.value}: {outcome.error}")
    logger.info("%s", outcome.line())
    for warning in outcome.warnings:
        logger.warning("s%02d %s: %s", subject, stage.value, warning)
    return outcome


def _outcome_of(future: PrefectFuture, subject: int, stage: Stage) -> StageOutcome:
    state = future.state
    if state.is_completed():
        return future.result()
    if state.is_failed() or state.is_crashed():
        try:
            future.result()
        except Exception as err:  # noqa: BLE001 - the task's own exception is the message
            message = str(err)
        else:
            message = state.message or state.name
        return StageOutcome.failed(subject, stage, message or "task failed")
    # NotReady: an upstream task crashed (not a failed outcome, which still returns)
    return StageOutcome.failed(subject, stage, f"not run: upstream task ended {state.name}")


@flow(name="preprocess-deap", validate_parameters=True)
def preprocess_deap(config: PreprocessConfig):  # noqa: ANN201 - returns a Prefect state
    """Preprocess a DEAP folder into the feature store, subject-stage by subject-stage.

    The subject-stages run in a subflow whose task runner the parameters choose (threads,
    processes, or a Dask cluster), so a deployment honours them as `milmer preprocess` does.
    """
    child = preprocess_subjects.with_options(task_runner=task_runner_for(config))(
        config=config, return_state=True)
    summary = child.result(raise_on_failure=False)
    if not isinstance(summary, RunSummary):
        return child
    summary = with_reports(config, summary)
    if summary.reports:
        create_link_artifact(key="qc-reports", link=Path(summary.reports[-1]).resolve().as_uri(),
                             link_text=f"QC reports ({len(summary.reports) - 1} subjects)",
                             description="per-subject MNE Report: ICA, face crops, tokens, records")
    return final_state(summary)


def with_reports(config: PreprocessConfig, summary: RunSummary) -> RunSummary:
    """``summary`` with the QC reports written (``config.report``) for the run's subjects that
    have an ingest; a report that cannot be written is said, it does not fail the run."""
    if config.report is None:
        return summary
    from flows.qc import write_qc_reports
    from store_schema.errors import MilmerError

    subjects = sorted({o.subject for o in summary.outcomes
                       if not (o.stage == Stage.ingest and o.status == "failed")})
    try:
        written = write_qc_reports(config.store, Path(config.report), subjects=subjects or None)
    except MilmerError as err:
        return summary.model_copy(update={"report_error": str(err)})
    return summary.model_copy(update={"reports": [str(p) for p in written]})


@flow(name="preprocess-subjects", validate_parameters=False)
def preprocess_subjects(config: PreprocessConfig):  # noqa: ANN201 - returns a Prefect state
    logger = get_run_logger()
    config.open_store()  # create it once
    subjects = requested_subjects(config.deap, config.subjects, source=config.ingest.source)
    logger.info("subjects %s, stages %s", subjects, [s.value for s in config.stages])
    futures: dict[tuple[int, Stage], PrefectFuture] = {}
    previous_on_device: dict[Stage, PrefectFuture] = {}

    def submit(node: SubjectStage, upstream: PrefectFuture | None) -> PrefectFuture:
        # The tokens stage (the GPU, when present) runs one subject at a time: each waits for
        # the previous subject's tokens, whatever their outcome, while CPU stages of other
        # subjects go on.
        before = previous_on_device.get(node.stage)
        with _on_gpu_workers(config, node.stage):
            future = subject_stage_task.with_options(
                task_run_name=f"s{node.subject:02d}-{node.stage.value}",
            ).submit(config, node.subject, node.stage, upstream,
                     wait_for=[allow_failure(before)] if before else None)
        if node.stage in ONE_AT_A_TIME:
            previous_on_device[node.stage] = future
        futures[(node.subject, node.stage)] = future
        return future

    graph = list(run_graph(subjects, config.stages, stage_major=True))
    progress.current().begin("subject-stages", total=len(graph))
    outcomes: dict[tuple[int, Stage], StageOutcome] = {}
    with _workers_share_this_api():
        # Stage-major order: every subject's ingest is queued before any eeg task that waits on
        # one, so waiting tasks never hold the runner's resolver threads while work sits unqueued.
        walk(graph, submit)
        key_of = {id(f): key for key, f in futures.items()}
        for future in as_completed(list(futures.values())):  # reported as they end, wherever they ran
            future.wait()  # its final state, not the API's view of a moment ago
            key = key_of[id(future)]
            outcomes[key] = _outcome_of(future, *key)
            report_outcome(outcomes[key])
        wait(list(futures.values()))
    summary = RunSummary(outcomes=[outcomes[key] for key in sorted(
        outcomes, key=lambda k: (k[0], config.stages.index(k[1])))])
    create_markdown_artifact(key="preprocess-summary", markdown=summary.markdown(),
                             description="subject x stage: computed / skipped / failed")
    return final_state(summary)


def final_state(summary: RunSummary):  # noqa: ANN201 - a Prefect state carrying the summary
    if summary.ok:
        return Completed(message=", ".join(f"{n} {k}" for k, n in summary.counts().items()),
                         data=summary)
    failed = "; ".join(f"s{o.subject:02d} {o.stage.value}: {o.error}" for o in summary.failures())
    return Failed(message=f"{len(summary.failures())} subject-stage(s) failed: {failed}", data=summary)


def _on_gpu_workers(config: PreprocessConfig, stage: Stage):  # noqa: ANN202 - a context manager
    """On Dask, send the accelerator stage only to workers that advertise the GPU resource."""
    if config.dask_address and config.dask_gpu_resource and stage in ONE_AT_A_TIME:
        import dask

        return dask.annotate(resources={config.dask_gpu_resource: 1})
    return nullcontext()


@contextmanager
def _workers_share_this_api() -> Iterator[None]:
    """Point task processes at this flow's API instead of each starting a temporary server.

    Without a configured server, Prefect starts a temporary API per process (~4 s each, and a
    separate database that the flow never sees). Worker processes read PREFECT_API_URL from the
    environment they are started with.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    with get_client(sync_client=True) as client:
        os.environ["PREFECT_API_URL"] = str(client.api_url).rstrip("/")
    try:
        yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)


def task_runner_for(config: PreprocessConfig):  # noqa: ANN201 - a Prefect task runner
    if config.dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=config.dask_address)
    workers = config.workers or os.cpu_count() or 1
    if config.runner == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    return ThreadPoolTaskRunner(max_workers=workers)


def run_flow(config: PreprocessConfig, *, skip_when_up_to_date: bool = True,
             reporter: progress.Reporter | None = None) -> RunSummary:
    """Run ``preprocess-deap`` in this process (Prefect starts a temporary local API if needed).

    With no Prefect server configured and nothing to recompute (see :mod:`flows.plan`), it
    returns every subject-stage as skipped without starting Prefect's temporary API (~10 s);
    a configured server always records the run. With a ``reporter`` (``milmer preprocess``:
    bars or lines, :func:`store_schema.run.progress.choose`), the run's progress goes to it.
    """
    if skip_when_up_to_date:
        from flows.plan import summary_if_up_to_date

        skipped = summary_if_up_to_date(config)
        if skipped is not None:
            return with_reports(config, skipped)
    if reporter is None:
        return _run_flow(config)
    with progress.use(reporter):
        return _run_flow(config)


def quiet_prefect_console(level: int = logging.ERROR) -> Callable[[], None]:
    """Prefect's console handlers print Prefect's own lines (its engine's, the temporary API's,
    the flow's and the tasks' run loggers) only from ``level`` up, until the returned undo is
    called: a reporter says the rest. Its API handler, and so the UI, still gets every line;
    other loggers' warnings (a lock wait) still print."""
    from prefect.logging.handlers import PrefectConsoleHandler

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno >= level or not record.name.startswith("prefect")

    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in
                                      list(logging.root.manager.loggerDict))]
    handlers = {h for lg in loggers for h in getattr(lg, "handlers", [])
                if isinstance(h, PrefectConsoleHandler)}
    for handler in handlers:
        handler.addFilter(keep)

    def undo() -> None:
        for handler in handlers:
            handler.removeFilter(keep)

    return undo


def _run_flow(config: PreprocessConfig) -> RunSummary:
    state = preprocess_deap(config=config, return_state=True)
    summary = state.result(raise_on_failure=False)
    # A subflow that raised (e.g. a DEAP folder without .dat files) comes back as the parent's
    # Failed state wrapping the subflow's: unwrap to the original exception and its message.
    for _ in range(3):
        if isinstance(summary, list) and len(summary) == 1:
            summary = summary[0]
        if not isinstance(summary, State):
            break
        summary = summary.result(raise_on_failure=False)
    if isinstance(summary, RunSummary):
        return summary
    if isinstance(summary, BaseException):
        raise summary
    raise RuntimeError(f"the preprocess-deap flow ended {state.name}: {state.message}")


def run_chain_inline(config: PreprocessConfig) -> RunSummary:
    """The same subject-stages in a plain loop, without Prefect."""
    config.open_store()
    subjects = requested_subjects(config.deap, config.subjects, source=config.ingest.source)
    graph = list(run_graph(subjects, config.stages))
    progress.current().begin("subject-stages", total=len(graph))

    def run(node: SubjectStage, upstream: StageOutcome | None) -> StageOutcome:
        outcome = run_subject_stage(config, node.subject, node.stage, upstream)
        report_outcome(outcome)
        return outcome

    return RunSummary(outcomes=walk(graph, run))
