"""MLflow tracking of `milmer train` and `milmer ablate`: what MLflow's own client reads back from a
local SQLite store and from a real `mlflow server` on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from tests.conftest import NARROW_HEADS
from tests.servers import mlflow_server
from train.config import resolve_config
from train.synthetic import write_planted_store
from train.tracking import RUN_RECORD, flat_params, store_lineage, tracking_for, train_tracked


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _no_tracking_uri_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("tracking") / "store.zarr")
    write_planted_store(url, subjects=2, trials=8, segments_per_trial=1, seed=0, tokens=False)
    return url


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The parent of the run folders: ``--track`` puts its database here, and the study logs to
    the same one (one SQLite database created per module, not one per test)."""
    return tmp_path_factory.mktemp("runs")


def run_of(out: Path) -> tuple[MlflowClient, str]:
    record = json.loads((out / RUN_RECORD).read_text())
    return MlflowClient(tracking_uri=record["tracking_uri"]), record["run_id"]


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def fold_history(out: Path, fold: int, key: str) -> list[tuple[int, float]]:
    rows = json.loads((out / "folds" / f"fold{fold}.json").read_text())["history"]
    return [(r["epoch"], pytest.approx(r[key])) for r in rows if r[key] is not None]


def assert_logged_run(client: MlflowClient, run_id: str, out: Path, *, epochs: int) -> None:
    """Params, per-epoch histories, final figures, tags and artifacts of the run in ``out``."""
    run = client.get_run(run_id)
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == str(config["epochs"]) == str(epochs)
    assert run.data.params["model.kind"] == config["model"]["kind"]
    assert run.data.params["store"] == config["store"]
    for fold in (0, 1):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert history(client, run_id, f"fold{fold}/{key}") == fold_history(out, fold, key), key
        assert [s for s, _ in history(client, run_id, f"fold{fold}/train_loss")] == list(range(1, epochs + 1))
    assert run.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.metrics["macro_f1"] == pytest.approx(metrics["macro_f1"])
    assert run.data.metrics["fold1/selected_epoch"] == metrics["folds"][1]["selected_epoch"]
    assert run.data.tags["milmer.protocol"] == metrics["protocol"]
    assert run.data.tags["milmer.leaky"] == str(metrics["leaky"]).lower()
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"metrics.json", "config.json", "splits.json", "confusion.png", "curves.png", "lineage.json"} <= names
    lineage = json.loads(Path(client.download_artifacts(run_id, "lineage.json")).read_text())
    assert run.data.tags["milmer.lineage"] == lineage["digest"]
    assert lineage == store_lineage(config["store"], metrics["subjects"]) | {
        "token_weights_used": metrics["token_weights"]}
    assert json.loads(Path(client.download_artifacts(run_id, "metrics.json")).read_text()) == metrics


def test_train_with_track_logs_to_sqlite_beside_the_run_and_resume_fills_in_the_epochs(
        store_url: str, runs: Path, tmp_path: Path) -> None:
    from flows.cli import app

    config = tmp_path / "small.json"
    config.write_text(json.dumps({"model": {**NARROW_HEADS, "kind": "eeg"}, "lr": 1e-3, "device": "cpu"}))
    out = runs / "first"
    result = CliRunner().invoke(app, ["train", "--store", store_url, "--out", str(out), "--config",
                                      str(config), "--epochs", "2", "--folds", "2", "--no-progress",
                                      "--track"])
    assert result.exit_code == 0, result.output
    client, run_id = run_of(out)
    assert client.tracking_uri == f"sqlite:///{runs / 'mlflow.db'}" and (runs / "mlflow.db").is_file()
    assert client.get_run(run_id).info.artifact_uri.startswith((runs / "mlartifacts").as_uri())
    assert client.get_run(run_id).info.experiment_id == client.get_experiment_by_name("milmer-train").experiment_id
    assert_logged_run(client, run_id, out, epochs=2)
    lineage = json.loads((out / "lineage.json").read_text())
    assert set(lineage["stage_fingerprints"]) == {"s01", "s02"}
    assert {"ingest", "eeg", "segment"} <= set(lineage["stage_fingerprints"]["s01"])

    # --resume with more epochs: params are immutable in MLflow, so a new run, holding every epoch
    # (1-2 from the fold records of the first invocation, 3 live)
    again = CliRunner().invoke(app, ["train", "--store", store_url, "--out", str(out), "--resume",
                                     "--epochs", "3", "--no-progress", "--track"])
    assert again.exit_code == 0, again.output
    client, resumed = run_of(out)
    assert resumed != run_id
    assert_logged_run(client, resumed, out, epochs=3)


def test_an_ablation_study_is_one_experiment_with_one_run_per_row(store_url: str, runs: Path,
                                                                  tmp_path: Path) -> None:
    from flows.cli import app
    from train.study import STUDIES

    config = tmp_path / "rows.json"
    config.write_text(json.dumps({"model": NARROW_HEADS, "lr": 1e-3, "device": "cpu", "protocol": "segment"}))
    db = f"sqlite:///{runs / 'mlflow.db'}"
    args = ["ablate", "tokenizers", "--store", store_url, "--out", str(tmp_path / "study"), "--config",
            str(config), "--epochs", "1", "--folds", "2", "--subjects", "1", "--tracking-uri", db]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=db)
    experiment = client.get_experiment_by_name(f"ablate tokenizers: {(tmp_path / 'study').resolve()}")
    runs = client.search_runs([experiment.experiment_id])
    presets = [row.preset for row in STUDIES["tokenizers"]]
    assert sorted(r.data.tags["milmer.preset"] for r in runs) == sorted(presets)
    for run in runs:
        assert run.data.tags["milmer.study"] == "tokenizers" and run.data.tags["milmer.leaky"] == "true"
        assert_logged_run(client, run.info.run_id, tmp_path / "study" / "rows" / run.info.run_name, epochs=1)
    # the study again: rows are read back, and their runs are not logged twice
    assert CliRunner().invoke(app, args).exit_code == 0
    assert len(client.search_runs([experiment.experiment_id])) == len(presets)


def test_tracking_is_off_without_a_uri_and_never_imports_mlflow(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracking_for(tmp_path / "run") is None
    assert tracking_for(tmp_path / "run", track=True).uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert tracking_for(tmp_path / "run").uri == "http://127.0.0.1:1"
    assert tracking_for(tmp_path / "run", track=False) is None  # --no-track wins over the environment
    params = flat_params(resolve_config(None, store="s.zarr", subjects=[1, 2]))
    assert params["model.d_model"] == "768" and params["subjects"] == "[1, 2]" and params["store"] == "s.zarr"


def test_an_unusable_tracking_uri_fails_in_one_line_before_training(store_url: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cli import app

    for uri in ("nosuch://tracking", "http://127.0.0.1:1"):
        result = CliRunner().invoke(app, ["train", "--store", store_url, "--out", str(tmp_path / "r"),
                                          "--epochs", "1", "--model", "eeg", "--tracking-uri", uri])
        assert result.exit_code == 2, result.output
        assert f"error: {uri}: " in result.output and ("no MLflow tracking server answers there"
                                                       in result.output or "MLflow tracking failed"
                                                       in result.output), result.output
        assert not (tmp_path / "r" / "config.json").exists()


def test_a_real_mlflow_server_receives_params_histories_and_artifacts(store_url: str, tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    with mlflow_server(tmp_path / "server") as url:
        cfg = resolve_config(None, store=store_url, epochs=2, folds=2, lr=1e-3, device="cpu",
                             model={**NARROW_HEADS, "kind": "eeg"})
        out = tmp_path / "run"
        train_tracked(cfg, out, tracking_for(out, uri=url, experiment="on-a-server"), progress=False)
        client, run_id = run_of(out)
        assert client.tracking_uri == url
        assert_logged_run(client, run_id, out, epochs=2)
        # the server stored the artifacts in its --artifacts-destination, not beside the run
        stored = list((tmp_path / "server" / "artifacts").rglob("metrics.json"))
        assert len(stored) == 1 and json.loads(stored[0].read_text()) == json.loads((out / "metrics.json").read_text())
