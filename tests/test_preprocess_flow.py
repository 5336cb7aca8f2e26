"""The `preprocess-deap` Prefect flow: in-process, on a real Dask cluster, and as a served deployment.

Every server and worker is started on 127.0.0.1 by the test and stopped by it.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flows.config import PreprocessConfig
from flows.preprocess import RunSummary, run_flow
from pipeline.readers import deap_format as fmt
from store_schema.engine.store import FeatureStore
from store_schema.engine.verify import verify_store
from tests.conftest import NARROW_HEADS
from tests.servers import BIN, background, dask_cluster, wait_until

EEG_STAGES = ("ingest", "eeg", "segment")
CPU_STAGES = [*EEG_STAGES, "faces"]
"""Everything but tokens (Swin on a CPU costs ~0.1 s a frame): tokens have their own test below."""


def statuses(summary: RunSummary) -> set[str]:
    return {o.status for o in summary.outcomes}


def store_contents(url: str) -> dict[tuple[int, str], tuple[str, dict[str, np.ndarray]]]:
    """Every committed subject-stage: its fingerprint and its arrays."""
    store = FeatureStore.open(url, mode="r")
    contents = {}
    for subject in store.subjects():
        for stage in EEG_STAGES:
            record = store.record(subject, stage)
            if record is not None:
                contents[(subject, stage)] = (record.fingerprint, store.read_stage(subject, stage))
    return contents


def assert_same_store(a: str, b: str) -> None:
    left, right = store_contents(a), store_contents(b)
    assert left.keys() == right.keys() and left
    for key, (fingerprint, arrays) in left.items():
        assert right[key][0] == fingerprint, key
        for name, data in arrays.items():
            np.testing.assert_array_equal(right[key][1][name], data, err_msg=f"{key} {name}")


@pytest.fixture(scope="module")
def local_store(small_deap_master: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The reference: the flow run in-process on this machine (worker processes)."""
    url = str(tmp_path_factory.mktemp("flow") / "local.zarr")
    first = run_flow(PreprocessConfig(deap=small_deap_master, store=url, runner="processes", workers=2,
                                      stages=CPU_STAGES))
    assert statuses(first) == {"computed"} and len(first.outcomes) == 2 * len(CPU_STAGES)
    return url


def test_flow_in_process_builds_the_store_and_a_rerun_skips_everything(
    small_deap_master: Path, local_store: str
) -> None:
    assert verify_store(FeatureStore.open(local_store, mode="r")) == []
    again = run_flow(PreprocessConfig(deap=small_deap_master, store=local_store, runner="threads",
                                      stages=CPU_STAGES))
    assert statuses(again) == {"skipped"}
    assert "| s01 | skipped" in again.markdown()


def test_a_child_forked_after_a_flow_ran_in_this_process_exits_cleanly(local_store: str) -> None:
    """Prefect leaves thread-exit hooks that made every later forked child exit with code 1 (a
    DataLoader worker after an in-process run); flows.fork_safety drops them in the child."""
    child = multiprocessing.get_context("fork").Process(target=print, args=("child of", local_store))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0


def test_a_corrupt_subject_fails_the_run_and_the_others_complete(small_deap: Path, tmp_path: Path) -> None:
    path = small_deap / fmt.PREPROCESSED_DIR / fmt.dat_name(2)
    path.write_bytes(b"not a pickle at all")
    summary = run_flow(PreprocessConfig(deap=small_deap, store=str(tmp_path / "s.zarr"), runner="threads",
                                        stages=CPU_STAGES))
    assert not summary.ok
    by_key = {(o.subject, o.stage.value): o for o in summary.outcomes}
    assert all(by_key[(1, stage)].status == "computed" for stage in EEG_STAGES)
    assert all(by_key[(2, stage)].status == "failed" for stage in EEG_STAGES)
    assert f"{path}: not a DEAP pickle" in by_key[(2, "ingest")].error
    assert f"{path}: not a DEAP pickle" in summary.markdown()


@pytest.fixture(scope="module")
def server(prefect_api: tuple[str, dict[str, str]]) -> tuple[str, dict[str, str]]:
    return prefect_api  # the session's real Prefect API (tests/conftest.py)


@pytest.fixture(scope="module")
def dask_workers(server, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    """One Dask scheduler and two workers for the module's Dask tests, worker 1 with a GPU
    resource (tasks that ask for none run on either); yields (address, folder of worker-i.log)."""
    folder = tmp_path_factory.mktemp("dask")
    with dask_cluster(folder, server[1], workers=2, resources={1: "GPU=1"}) as address:
        yield address, folder


def worker_output_from_now(folder: Path) -> Callable[[int], str]:
    """What worker ``i`` logs from this call on (the workers are shared by the module's tests)."""
    sizes = [(folder / f"worker-{i}.log").stat().st_size for i in range(2)]
    return lambda i: (folder / f"worker-{i}.log").read_bytes()[sizes[i]:].decode(errors="replace")


def test_flow_on_a_real_dask_cluster_gives_the_same_store(
    small_deap_master: Path, local_store: str, server, dask_workers, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, env = server
    monkeypatch.setenv("PREFECT_API_URL", url)  # workers and this process share one real API
    address, folder = dask_workers
    output = worker_output_from_now(folder)
    summary = run_flow(PreprocessConfig(deap=small_deap_master, store=str(tmp_path / "dask.zarr"),
                                        stages=CPU_STAGES,
                                        dask_address=address))
    assert statuses(summary) == {"computed"}, summary.markdown()
    workers_used = {line for i in range(2) for line in output(i).splitlines()
                    if "s01-" in line or "s02-" in line}
    assert workers_used, "the tasks should have run on the Dask workers"
    assert_same_store(local_store, str(tmp_path / "dask.zarr"))


def test_served_deployment_runs_from_the_prefect_cli(
    small_deap_master: Path, local_store: str, server, tmp_path: Path
) -> None:
    url, env = server
    store = tmp_path / "deployed.zarr"
    env = {**env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    with background([str(BIN / "milmer"), "serve", "--deap", str(small_deap_master), "--store", str(store),
                     "--stages", ",".join(CPU_STAGES),
                     "--runner", "threads"], env=env, log=tmp_path / "serve.log") as serving:
        # Polled over HTTP first: each `prefect deployment ls` is a process start (~1.5 s of CPU).
        wait_until(lambda: urllib.request.urlopen(
            f"{url}/deployments/name/preprocess-deap/default", timeout=10).status == 200,
            timeout=90, what="served deployment", proc=serving)
        def deployment_listed() -> bool:
            out = subprocess.run([str(BIN / "prefect"), "deployment", "ls"], env=env,
                                 capture_output=True, text=True, timeout=60).stdout
            return "preprocess-deap/default" in out and "train-heads/default" in out
        wait_until(deployment_listed, timeout=90, what="served deployment", proc=serving)
        run = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "preprocess-deap/default", "--watch",
             "--watch-timeout", "240"], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr + (tmp_path / "serve.log").read_text()[-3000:]
        assert verify_store(FeatureStore.open(str(store), mode="r")) == []
        assert_same_store(local_store, str(store))

        # train-heads, served beside it, trains from the store that deployment built
        trained = tmp_path / "trained"
        params = {"config": {"store": str(store), "epochs": 1, "folds": 2, "device": "cpu",
                             "model": {**NARROW_HEADS, "kind": "eeg"}}, "out": str(trained)}
        train = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "train-heads/default", "--params",
             json.dumps(params), "--watch", "--watch-timeout", "240"],
            env=env, capture_output=True, text=True, timeout=300)
        assert train.returncode == 0, train.stdout + train.stderr + (tmp_path / "serve.log").read_text()[-3000:]
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["model"] == "eeg" and metrics["store"] == str(store) and len(metrics["folds"]) == 2
    markdown, table = published_artifacts(url, ["train-heads-metrics", "train-heads-folds"])
    assert f"accuracy {metrics['accuracy']:.3f}" in markdown and "protocol: trial" in markdown
    assert (trained / "curves.png").as_uri() in markdown
    assert [row["test_accuracy"] for row in json.loads(table)] == [
        pytest.approx(f["accuracy"], abs=1e-4) for f in metrics["folds"]]

    # Invalid parameters are refused before any run starts, naming the field.
    bad = subprocess.run(
        [str(BIN / "prefect"), "deployment", "run", "preprocess-deap/default", "--params",
         json.dumps({"config": {"deap": str(small_deap_master), "store": str(store),
                                "eeg": {"l_freq": "low"}}})],
        env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "l_freq" in bad.stdout + bad.stderr


def published_artifacts(api_url: str, keys: list[str]) -> list[str]:
    """The latest data of the Prefect artifacts ``keys`` on the server at ``api_url``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        found = {a.key: a.data for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))}
    return [found[key] for key in keys]


def test_tokens_stage_records_random_weights_and_recomputes_only_on_new_weights(
    small_deap_master: Path, local_store: str, tmp_path: Path
) -> None:
    import shutil

    from flows.preprocess import run_chain_inline

    store = tmp_path / "tokens.zarr"
    shutil.copytree(local_store, store)  # every CPU stage already committed
    run = lambda weights: run_chain_inline(PreprocessConfig(  # noqa: E731
        deap=small_deap_master, store=str(store), subjects=[1], weights=weights,
        stages=[*CPU_STAGES, "tokens"]))
    first = run("random")
    assert {(o.stage.value, o.status) for o in first.outcomes} == {
        *((s, "skipped") for s in CPU_STAGES), ("tokens", "computed")}
    opened = FeatureStore.open(str(store), mode="r")
    record = opened.record(1, "tokens")
    assert record.params["weights_fingerprint"] == "random:0" and record.extra["random_weights"] is True
    tokens = opened.read(1, "tokens", "tokens")
    n_seg = opened.read(1, "segment", "eeg").shape[0]
    assert tokens.shape == (n_seg, 10, 49, 768) and tokens.dtype == np.float16
    assert np.isfinite(tokens).all() and tokens.astype(np.float32).std() > 0
    assert {o.status for o in run("random").outcomes} == {"skipped"}
    other = run("random:1")
    assert {(o.stage.value, o.status) for o in other.outcomes if o.status == "computed"} == {
        ("tokens", "computed")}
    assert not np.array_equal(FeatureStore.open(str(store), mode="r").read(1, "tokens", "tokens"), tokens)


def test_on_dask_the_tokens_stage_runs_only_on_the_worker_with_the_gpu_resource(
    small_deap_master: Path, local_store: str, server, dask_workers, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    url, env = server
    monkeypatch.setenv("PREFECT_API_URL", url)
    store = tmp_path / "gpu.zarr"
    shutil.copytree(local_store, store)  # CPU stages committed: only tokens run
    address, folder = dask_workers  # worker 1 has GPU=1
    output = worker_output_from_now(folder)
    summary = run_flow(PreprocessConfig(
        deap=small_deap_master, store=str(store), subjects=[1, 2], weights="random",
        stages=[*CPU_STAGES, "tokens"], dask_address=address, dask_gpu_resource="GPU"))
    assert summary.ok, summary.markdown()
    assert {(o.subject, o.stage.value) for o in summary.outcomes if o.status == "computed"} == {
        (1, "tokens"), (2, "tokens")}
    gpu_log, cpu_log = output(1), output(0)
    assert "s01-tokens" in gpu_log and "s02-tokens" in gpu_log
    assert "tokens" not in cpu_log


def test_a_flow_level_error_reaches_the_caller_as_itself(small_deap: Path) -> None:
    """An error the flow meets before any subject-stage (here: a remote URL holding a Zarr array,
    which the config does not open) comes back as itself, not as "1/1 states failed"."""
    import zarr

    from store_schema.errors import StoreError

    zarr.create_array("memory://flow-level-error", shape=(2,), dtype="int8")
    config = PreprocessConfig(deap=small_deap, store="memory://flow-level-error", stages=["ingest"])
    with pytest.raises(StoreError, match="memory://flow-level-error: not a"):
        run_flow(config)
