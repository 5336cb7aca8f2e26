"""The ``train-heads`` flow: one training run of the heads on a store, as a Prefect deployment.

Served beside ``preprocess-deap`` by ``milmer serve``; ``prefect deployment run
train-heads/default --params '{"config": {"store": "...", ...}, "out": "..."}'`` trains from a
store the other deployment built. The flow only orchestrates: it calls
:func:`train.tracking.train_tracked` (the trainer, logged to MLflow when a tracking URI is given)
and publishes the run's metrics as Prefect artifacts: a markdown summary (protocol, data, token
weights, machine, per-subject accuracy, links to the plots and files) and a per-fold table.
"""

# No `from __future__ import annotations`: Prefect builds the served flow's parameter schema from
# the real annotation objects.

from pathlib import Path
from typing import Any, Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from train.config import TrainConfig
from train.report import fold_rows, run_markdown
from train.tracking import machine, tracking_for, train_tracked


def run_folder(out: Optional[str], runs_dir: str) -> Path:
    """``out``, or ``runs_dir/<the flow run's name>`` when no folder is given."""
    return Path(out) if out else Path(runs_dir) / (flow_run.get_name() or "train-heads")


@flow(name="train-heads", validate_parameters=True)
def train_heads(
    config: TrainConfig,
    out: Optional[str] = None,
    runs_dir: str = "runs",
    resume: bool = False,
    tracking_uri: Optional[str] = None,
    experiment: str = "milmer-train",
) -> dict[str, Any]:
    """Train the heads (``config``: every :class:`~train.config.TrainConfig` field) into ``out``
    (default ``runs_dir/<flow run name>``); MLflow at ``tracking_uri`` (or the serving process's
    ``MLFLOW_TRACKING_URI``) when set."""
    logger = get_run_logger()
    out_dir = run_folder(out, runs_dir)
    logger.info("training %s on %s into %s", config.model.kind, config.store, out_dir)
    tracking = tracking_for(out_dir, uri=tracking_uri, experiment=experiment)
    loader = None
    if config.finetune_backbone:  # the pipeline's weight loader: train never imports pipeline
        from pipeline.weights.loop import load_loop_backbone as loader
    metrics = train_tracked(config, out_dir, tracking, resume=resume, progress=False,
                            backbone_loader=loader)
    create_markdown_artifact(key="train-heads-metrics", markdown=run_markdown(metrics, out_dir, machine=machine()),
                             description=f"{config.model.kind}, {config.protocol} protocol")
    create_table_artifact(key="train-heads-folds", table=fold_rows(metrics),
                          description="per fold: test accuracy at the epoch chosen on validation")
    logger.info("accuracy %.3f, macro F1 %.3f, chance %.3f%s; %s", metrics["accuracy"],
                metrics["macro_f1"], metrics["chance"], " (LEAKY)" if metrics["leaky"] else "", out_dir)
    return {k: metrics[k] for k in ("accuracy", "macro_f1", "chance", "protocol", "leaky", "n_test")} | {
        "out": str(out_dir)}
