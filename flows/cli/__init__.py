"""The ``milmer`` command line: a root app over one sub-app per area. Each command is a thin shell
over a pipeline, store or train call.

    data        synth, inspect                  a DEAP folder written, a DEAP folder checked
    preprocess  preprocess (--plan), serve,     building the feature store and its QC reports
                report
    store       store info|verify|faces         looking into a feature store
    training    train, ablate                   the heads trained on a store's tokens
    weights     finetune                        the face backbone fine-tuned on expressions
    export      export                          a store as .npz files or a Hugging Face dataset

``options`` defines the options several commands share, ``render`` what they print, ``errors``
how they fail. Heavy libraries are imported inside the commands so that ``milmer --help`` stays
fast, and importing this package changes nothing (no environment variable, no folder): the
Prefect defaults are applied by the root callback, before any command runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from flows.cli import data, export, preprocess, store, training, weights

app = typer.Typer(
    name="milmer",
    help="DEAP preprocessing pipeline, Zarr feature store and Milmer training heads.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app)
app.add_typer(preprocess.app)
app.add_typer(training.app)
app.add_typer(weights.app)
app.add_typer(export.app)
app.add_typer(store.app, name="store")  # after the commands: the help lists it last, as it always has


def prefect_environment() -> None:
    """Defaults for Prefect, set before a command can import it (a variable already set wins).

    Prefect's temporary API migrates its database on first use; on a busy 2-core machine that can
    take longer than Prefect's default 20 s. No telemetry from an offline research machine.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if os.environ.get("PREFECT_HOME"):
        # Prefect's SQLite cannot open a database in a folder that does not exist yet.
        Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)


@app.callback()
def _before_every_command() -> None:
    prefect_environment()


def main() -> None:  # pragma: no cover - console entry
    app()
