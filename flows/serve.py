"""Serve the ``preprocess-deap/default`` and ``train-heads/default`` deployments to a Prefect server.

    PREFECT_API_URL=http://127.0.0.1:4200/api milmer serve --deap DIR --store STORE [--runs DIR]

(or ``python -m flows serve ...``); then ``prefect deployment run preprocess-deap/default`` builds
the store with those defaults (or ``--params '{"config": {...}}'`` for another dataset or store),
and ``prefect deployment run train-heads/default --params '{"config": {"store": ...}}'`` trains
heads on it, each run in its own folder under ``--runs`` unless ``"out"`` names one.
"""

from __future__ import annotations

import os
from pathlib import Path

from flows.config import PreprocessConfig
from flows.preprocess import preprocess_deap

DEPLOYMENT_NAME = "default"


def serve(config: PreprocessConfig | None, *, runs_dir: Path | None = None) -> None:
    """Block, serving both deployments; each run validates its parameters before any work.
    ``config``'s store is also the store ``train-heads`` trains on by default."""
    if not os.environ.get("PREFECT_API_URL"):
        raise SystemExit(
            "PREFECT_API_URL is not set: start a server (`prefect server start --host 127.0.0.1`) and "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api before serving the deployment")
    from prefect import serve as serve_deployments

    from flows.training import train_heads

    parameters = {"config": config.model_dump(mode="json")} if config else {}
    train_parameters = {"runs_dir": str((runs_dir or Path("runs")).expanduser().resolve())}
    if config:
        train_parameters["config"] = {"store": config.store}
    serve_deployments(
        preprocess_deap.to_deployment(name=DEPLOYMENT_NAME, parameters=parameters,
                                      description="DEAP → feature store, subject-stage by subject-stage"),
        train_heads.to_deployment(name=DEPLOYMENT_NAME, parameters=train_parameters,
                                  description="Milmer heads trained on a feature store, fold by fold"))
