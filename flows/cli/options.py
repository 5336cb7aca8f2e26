"""Options that several commands share, defined once so that their help cannot drift apart.

Each alias is an ``Annotated`` type: a command parameter named after the flag (``labels`` for
``--labels``) takes it as its type. Also the parsers of the list-valued flags.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from flows.cli.errors import fail

# ---- a feature store ---------------------------------------------------------------------------

STORE_HELP = "Feature store folder or fsspec URL."

StoreArgument = Annotated[str, typer.Argument(help="Feature store folder or URL.")]
"""The store a command looks into: ``store info/verify/faces``, ``report``."""

# ---- train and ablate ----------------------------------------------------------------------------

Labels = Annotated[Optional[str], typer.Option(
    help="deap4 (default), deap2-valence, deap2-arousal, deap3-valence, deap3-arousal.")]
Protocol = Annotated[Optional[str], typer.Option(
    help="trial (default: whole trials held out), segment (leaky random split), loso.")]
Epochs = Annotated[Optional[int], typer.Option(help="Epochs per fold (default 100).")]
Folds = Annotated[Optional[int], typer.Option(help="k of the trial/segment protocols (default 5).")]
TrainDevice = Annotated[Optional[str], typer.Option(help="auto (default), cpu, cuda, cuda:N.")]
Seed = Annotated[Optional[int], typer.Option(help="Seed of folds, init and shuffling (default 0).")]
TrainSubjects = Annotated[Optional[str], typer.Option(help="Subjects to use, e.g. 1,2,5 (default: all).")]
Splits = Annotated[Optional[str], typer.Option(
    help="Split manifest (splits.json of an earlier run) to reuse exactly; its protocol and k are "
         "the run's unless --protocol/--folds say otherwise (then they must agree).")]
TrackingUri = Annotated[Optional[str], typer.Option(
    help="Log to MLflow at this tracking URI (sqlite:///PATH.db, http://HOST:PORT); default "
         "$MLFLOW_TRACKING_URI. mlflow is imported only when tracking is on.")]
Track = Annotated[Optional[bool], typer.Option(
    help="--track: log to MLflow, by default to sqlite:///<parent of --out>/mlflow.db when no URI "
         "is set; --no-track: never, even with MLFLOW_TRACKING_URI set.")]
PerSubject = Annotated[Optional[bool], typer.Option(
    "--per-subject/--pooled",
    help="One model per subject (the paper's setting; RUN_DIR/sNN/, metrics = mean ± std over "
         "subjects), trial or segment protocol only; default: one pooled model.")]
EarlyStopping = Annotated[Optional[int], typer.Option(
    help="Patience N in epochs: stop a fold once N epochs have passed since the epoch it would "
         "choose on validation (validation accuracy, or loss with selection val_loss); the chosen "
         "epoch is the one a full run chooses among the epochs run. Default: off (every epoch).")]

# ---- preprocess and serve ------------------------------------------------------------------------

DaskAddress = Annotated[
    Optional[str], typer.Option(help="Run the tasks on an existing Dask cluster (tcp://HOST:PORT).")]

# ---- progress (preprocess, train, ablate, finetune) ------------------------------------------------

ProgressFlag = Annotated[Optional[bool], typer.Option(
    "--progress/--no-progress",
    help="Progress bars (default: when stderr is a terminal); otherwise one line per finished "
         "step and every problem.")]
Verbose = Annotated[bool, typer.Option(
    "--verbose", help="Also a line for every progress note and count (implies no bars).")]

# ---- parsing -------------------------------------------------------------------------------------


def parse_ints(text: str | None, what: str) -> list[int] | None:
    """``1,2,s05`` as ``[1, 2, 5]``; None (every one) for 'all' or nothing; exit 2 on anything else."""
    if text is None or text.strip().lower() in {"", "all"}:
        return None
    try:
        return [int(part.strip().lstrip("sS")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise fail(f"--{what}: expected comma-separated numbers like 1,2,5, got {text!r}") from None


def parse_stages(text: str | None) -> list[str] | None:
    """``ingest,eeg`` as a list; None (every stage) for 'all' or nothing."""
    if text is None or text.strip().lower() in {"", "all"}:
        return None
    return [s.strip() for s in text.split(",") if s.strip()]

