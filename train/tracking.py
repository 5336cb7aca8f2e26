"""MLflow tracking of training runs: ``milmer train`` / ``milmer ablate`` with a tracking URI.

Tracking is on when a URI is given (``--tracking-uri`` or ``MLFLOW_TRACKING_URI``) or asked for
with ``--track``; with ``--track`` and no URI, the embedded default is a SQLite database beside
the run folder, ``sqlite:///<parent of --out>/mlflow.db``, its artifacts in
``<parent of --out>/mlartifacts/`` (MLflow's own default backend since 3.7; its ``./mlruns`` file
store is legacy). Any ``sqlite:///`` URI keeps its artifacts in ``mlartifacts/`` beside the
database file; a server URI (``http://...``) stores them where the server says
(``mlflow server --artifacts-destination``).

What a run logs (:class:`MlflowRun`):

* params: the resolved :class:`~train.config.TrainConfig`, flattened (``model.d_model``...);
* tags: ``milmer.protocol``, ``milmer.leaky`` (``true`` for the segment split), labels, model,
  store, run folder, machine; at the end the token weights' fingerprint and a digest of the
  store's stage fingerprints (``milmer.lineage``), so runs on the same data can be searched;
* per-epoch metrics, step = epoch, named by fold: ``fold0/train_loss``, ``fold0/train_accuracy``,
  ``fold0/val_loss``, ``fold0/val_accuracy``, ``fold0/lr`` (live, from the trainer's
  ``on_epoch_end``; epochs run by an earlier invocation are filled in from ``folds/*.json``);
* final figures: ``accuracy``, ``macro_f1``, ``chance``, ``n_test``, ``validation_accuracy``,
  ``fold<F>/test_accuracy``, ``fold<F>/selected_epoch``, ``s<NN>/test_accuracy``;
* artifacts: ``metrics.json``, ``config.json``, ``splits.json`` (when the run wrote one), the
  plots, and ``lineage.json``: the store's committed stage fingerprints per subject used and the
  token weights' provenance (spec, repo, revision, sha256s).

``RUN_DIR/mlflow_run.json`` records the run's id: ``--resume`` continues the same MLflow run
(a new one where a resumable setting such as ``epochs`` changed, since MLflow params are
immutable). mlflow is imported only when tracking is on.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.config import TrainConfig, TrainError

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_DB = "mlflow.db"
"""The embedded default's file name (MLflow's own), in the parent folder of the run folder."""
ARTIFACTS_BESIDE_DB = "mlartifacts"
RUN_RECORD = "mlflow_run.json"
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")
RUN_ARTIFACTS = ("metrics.json", "config.json", "splits.json", "confusion.png", "curves.png")


@dataclass(frozen=True)
class Tracking:
    """Where runs are logged: a tracking URI and an experiment name."""

    uri: str
    experiment: str

    @contextmanager
    def run(self, config: TrainConfig, out: Path, *, run_name: str | None = None,
            tags: dict[str, str] | None = None, resume: bool = True) -> Iterator[MlflowRun]:
        """An MLflow run for the training run in ``out``: FAILED if the block raises, FINISHED
        otherwise (:meth:`MlflowRun.finish` logs the outcome)."""
        run = MlflowRun(self, config, Path(out), run_name=run_name or Path(out).name,
                        tags=tags or {}, resume=resume)
        try:
            yield run
        except BaseException as err:
            try:
                run.end("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
            except Exception:  # noqa: BLE001 - the tracking server is gone: the error is the first one
                pass
            raise
        run.end("FINISHED")


def tracking_for(out: Path | str, *, uri: str | None = None, track: bool | None = None,
                 experiment: str = "milmer-train") -> Tracking | None:
    """The tracking a command asked for: ``uri`` (``--tracking-uri``), else
    ``$MLFLOW_TRACKING_URI``, else with ``track`` the SQLite database beside ``out``; None when
    none is set or ``track`` is False (``--no-track``). Imports nothing."""
    if track is False:
        return None
    uri = uri or os.environ.get(TRACKING_URI_ENV) or None
    if uri is None:
        if not track:
            return None
        uri = f"sqlite:///{Path(out).expanduser().resolve().parent / DEFAULT_DB}"
    return Tracking(uri=uri, experiment=experiment)


def flat_params(config: TrainConfig) -> dict[str, str]:
    """The config as MLflow params: nested keys dotted, values as JSON text (strings bare)."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        else:
            out[prefix] = value if isinstance(value, str) else json.dumps(value)

    walk("", config.model_dump(mode="json"))
    return out


def machine() -> str:
    """This machine in a few words (CPU model and cores), for the ``milmer.machine`` tag."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def store_lineage(store_url: str, subjects: list[int]) -> dict[str, Any]:
    """The store's committed stage fingerprints of ``subjects`` and the tokens' weights' provenance
    (as ``milmer store info`` reports them), with one digest over all fingerprints."""
    from store_schema.engine.store import FeatureStore
    from store_schema.views.info import token_weights

    store = FeatureStore.open(store_url, mode="r")
    stages: dict[str, dict[str, str]] = {}
    tokens = []
    for subject, stage, state in store.iter_stages():
        if subject not in subjects or state != "committed":
            continue
        record = store.record(subject, stage)
        if record is None:
            continue
        stages.setdefault(f"s{subject:02d}", {})[stage.value] = record.fingerprint
        if stage.value == "tokens":
            tokens.append((subject, record))
    digest = hashlib.sha256(json.dumps(stages, sort_keys=True).encode()).hexdigest()
    return {"store": store_url, "schema_version": store.schema_version, "digest": f"sha256:{digest}",
            "stage_fingerprints": stages, "token_weights": token_weights(tokens)}


def _check_reachable(uri: str) -> None:
    """Fail in seconds on a tracking server that does not answer (MLflow's client retries for
    minutes with backoff before it gives up)."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10).close()
    except urllib.error.HTTPError:
        return  # it answers (a proxy or auth in front of it): let MLflow's client say more
    except (OSError, ValueError) as err:
        raise TrainError(f"{uri}: no MLflow tracking server answers there ({err}); start one "
                         "(`mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri "
                         "sqlite:///mlflow.db`) or use --track for a local database") from None


class MlflowRun:
    """One MLflow run fed by a training run: :meth:`log_epoch` is the trainer's ``on_epoch_end``
    hook, :meth:`finish` logs the outcome from the run folder."""

    def __init__(self, tracking: Tracking, config: TrainConfig, out: Path, *, run_name: str,
                 tags: dict[str, str], resume: bool) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise TrainError("MLflow tracking needs mlflow: pip install 'milmer-deap[track]' "
                             "(or drop --track / --tracking-uri / MLFLOW_TRACKING_URI)") from None
        self.tracking, self.config, self.out = tracking, config, out
        self.logged: set[tuple[int, int]] = set()
        self.params = flat_params(config)
        _check_reachable(tracking.uri)
        try:
            self.client = MlflowClient(tracking_uri=tracking.uri)
            self.experiment_id = self._experiment()
            self.run_id, self.done = self._reuse() if resume else (None, False)
            if self.run_id is None:
                self.run_id = self.client.create_run(
                    self.experiment_id, run_name=run_name, tags={**self._start_tags(), **tags}).info.run_id
                self._batch(params=self.params)
        except TrainError:
            raise
        except Exception as err:  # noqa: BLE001 - MLflow's and its HTTP client's errors alike
            first = (str(err).strip().splitlines() or [""])[0][:300]
            raise TrainError(f"{tracking.uri}: MLflow tracking failed before training started "
                             f"({type(err).__name__}: {first}); check --tracking-uri / "
                             f"MLFLOW_TRACKING_URI, or drop them and --track") from None
        out.mkdir(parents=True, exist_ok=True)
        (out / RUN_RECORD).write_text(json.dumps({
            "tracking_uri": tracking.uri, "experiment": tracking.experiment,
            "experiment_id": self.experiment_id, "run_id": self.run_id}, indent=1) + "\n")

    # -- starting ----------------------------------------------------------------------------

    def _experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.tracking.experiment)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise TrainError(f"{self.tracking.uri}: experiment {self.tracking.experiment!r} is "
                                 "deleted; restore it in MLflow or pass another --experiment")
            return found.experiment_id
        location = None
        if self.tracking.uri.startswith("sqlite:///"):
            db = Path(self.tracking.uri[len("sqlite:///"):]).expanduser().resolve()
            location = (db.parent / ARTIFACTS_BESIDE_DB).as_uri()
        return self.client.create_experiment(self.tracking.experiment, artifact_location=location)

    def _reuse(self) -> tuple[str | None, bool]:
        """The run this folder logged to before, if its URI, experiment and params are these."""
        path = self.out / RUN_RECORD
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None, False
        if record.get("tracking_uri") != self.tracking.uri or record.get("experiment_id") != self.experiment_id:
            return None, False
        try:
            run = self.client.get_run(record["run_id"])
        except Exception:  # noqa: BLE001 - deleted or unknown to this store: start a new one
            return None, False
        if run.info.lifecycle_stage == "deleted" or run.data.params != self.params:
            return None, False
        self.logged = {(int(k.split("/")[0][4:]), m.step)
                       for k in run.data.metrics if k.startswith("fold") and k.endswith("/train_loss")
                       for m in self.client.get_metric_history(run.info.run_id, k)}
        done = run.info.status == "FINISHED" and (self.out / "metrics.json").is_file()
        if not done:
            self.client.update_run(run.info.run_id, status="RUNNING")
        return run.info.run_id, done

    def _start_tags(self) -> dict[str, str]:
        c = self.config
        return {"milmer.protocol": c.protocol, "milmer.leaky": str(c.leaky).lower(),
                "milmer.labels": c.labels.value, "milmer.model": c.model.kind,
                "milmer.store": c.store, "milmer.run_dir": str(self.out.resolve()),
                "milmer.machine": machine()}

    # -- logging -----------------------------------------------------------------------------

    def _batch(self, *, metrics: Sequence[tuple[str, float, int]] = (),
               params: dict[str, str] | None = None, tags: dict[str, str] | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v, step in metrics]
        params_list = [Param(k, v) for k, v in (params or {}).items()]
        tags_list = [RunTag(k, v) for k, v in (tags or {}).items()]
        for start in range(0, max(len(items), len(params_list), len(tags_list), 1), 100):
            self.client.log_batch(self.run_id, metrics=items[start:start + 100],
                                  params=params_list[start:start + 100],
                                  tags=tags_list[start:start + 100])

    def log_epoch(self, fold: int, epoch: int, row: dict[str, Any]) -> None:
        """The trainer's ``on_epoch_end``: this epoch's figures, step = epoch, named by fold."""
        self._batch(metrics=[(f"fold{fold}/{k}", row[k], epoch) for k in EPOCH_METRICS
                             if row.get(k) is not None])
        self.logged.add((fold, epoch))

    def _backfill(self, metrics: dict[str, Any]) -> None:
        """Epochs run before this invocation (a resumed run, a study row read back)."""
        rows = []
        for fold in metrics.get("folds", []):
            path = self.out / "folds" / f"fold{fold['fold']}.json"
            if not path.is_file():
                continue
            for row in json.loads(path.read_text()).get("history", []):
                if (fold["fold"], row["epoch"]) not in self.logged:
                    rows += [(f"fold{fold['fold']}/{k}", row[k], row["epoch"]) for k in EPOCH_METRICS
                             if row.get(k) is not None]
        if rows:
            self._batch(metrics=rows)

    def finish(self) -> dict[str, Any]:
        """Log the outcome of the run folder: final figures, tags, artifacts, lineage."""
        metrics = json.loads((self.out / "metrics.json").read_text())
        if self.done:  # this folder's run was logged in full before
            return metrics
        self._backfill(metrics)
        finals = [(k, metrics[k], 0) for k in ("accuracy", "macro_f1", "chance", "n_test", "seconds")
                  if isinstance(metrics.get(k), (int, float))]
        validation = (metrics.get("validation") or {}).get("accuracy")
        if validation is not None:
            finals.append(("validation_accuracy", validation, 0))
        for fold in metrics.get("folds", []):
            if fold.get("accuracy") is not None:
                finals.append((f"fold{fold['fold']}/test_accuracy", fold["accuracy"], 0))
            finals.append((f"fold{fold['fold']}/selected_epoch", fold["selected_epoch"], 0))
        finals += [(f"{s}/test_accuracy", v["accuracy"], 0)
                   for s, v in (metrics.get("per_subject") or {}).items()]
        lineage = store_lineage(self.config.store, list(metrics.get("subjects") or []))
        lineage["token_weights_used"] = metrics.get("token_weights")
        (self.out / "lineage.json").write_text(json.dumps(lineage, indent=1) + "\n")
        self._batch(metrics=finals, tags={
            "milmer.protocol": str(metrics["protocol"]), "milmer.leaky": str(metrics["leaky"]).lower(),
            "milmer.weights_fingerprint": str(metrics.get("weights_fingerprint")),
            "milmer.random_weights": str(metrics.get("random_weights")).lower(),
            "milmer.lineage": lineage["digest"],
            "milmer.subjects": ",".join(f"s{s:02d}" for s in metrics.get("subjects") or [])})
        for name in (*RUN_ARTIFACTS, "lineage.json"):
            if (self.out / name).is_file():
                self.client.log_artifact(self.run_id, str(self.out / name))
        return metrics

    def end(self, status: str) -> None:
        if not (self.done and status == "FINISHED"):
            self.client.set_terminated(self.run_id, status=status)


def train_tracked(config: TrainConfig, out: Path | str, tracking: Tracking | None, *,
                  resume: bool = False, run_name: str | None = None,
                  tags: dict[str, str] | None = None, **train_kwargs: Any) -> dict[str, Any]:
    """:func:`train.trainer.run_training`, logged to ``tracking`` when it is not None."""
    from train.trainer import run_training

    if tracking is None:
        return run_training(config, out, resume=resume, **train_kwargs)
    out = Path(out)
    if not resume and (out / "config.json").exists():  # the trainer refuses: no MLflow run for it
        return run_training(config, out, resume=resume, **train_kwargs)
    with tracking.run(config, out, run_name=run_name, tags=tags, resume=resume) as run:
        hook: Callable | None = train_kwargs.pop("on_epoch_end", None)

        def on_epoch_end(fold: int, epoch: int, row: dict[str, Any]) -> None:
            run.log_epoch(fold, epoch, row)
            if hook is not None:
                hook(fold, epoch, row)

        run_training(config, out, resume=resume, on_epoch_end=on_epoch_end, **train_kwargs)
        return run.finish()
