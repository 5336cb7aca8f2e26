"""Serve the ``preprocess-deap/default`` deployment to a Prefect server.

    PREFECT_API_URL=http://127.0.0.1:4200/api milmer serve --deap DIR --store STORE

(or ``python -m flows serve ...``); then ``prefect deployment run preprocess-deap/default`` runs
it with those defaults, or with ``--params '{"config": {...}}'`` for another dataset or store.
"""

from __future__ import annotations

import os

from flows.config import PreprocessConfig
from flows.preprocess import preprocess_deap

DEPLOYMENT_NAME = "default"


def serve(config: PreprocessConfig | None) -> None:
    """Block, serving the deployment; each run validates its parameters before any work."""
    if not os.environ.get("PREFECT_API_URL"):
        raise SystemExit(
            "PREFECT_API_URL is not set: start a server (`prefect server start --host 127.0.0.1`) and "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api before serving the deployment")
    parameters = {"config": config.model_dump(mode="json")} if config else {}
    preprocess_deap.serve(name=DEPLOYMENT_NAME, parameters=parameters,
                          description="DEAP → feature store, subject-stage by subject-stage")

