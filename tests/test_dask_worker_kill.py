"""A Dask worker killed (SIGKILL: OOM killer, pre-emption) in the middle of a subject-stage.

A Prefect server, a Dask scheduler and two workers on loopback; `milmer preprocess --dask-address`
on two subjects; the worker that runs s01's eeg stage is killed while ICA runs. Dask hands the
task to the other worker (and recomputes the results the dead one held: those find their commit
and skip); the run completes, each subject-stage is computed and committed once, and the store
equals one built without the kill. The dead worker's subject-stage lock (a flock on a file in STORE.locks/)
was dropped by the kernel with its process, so the retry takes it at once.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path

import pytest

from flows.config import PreprocessConfig
from flows.preprocess import run_chain_inline
from flows.summary import RunSummary
from pipeline.synth import SynthParams, write_synthetic_deap
from store_schema.engine.store import FeatureStore
from store_schema.engine.verify import verify_store
from tests.servers import BIN, dask_cluster_processes

pytestmark = pytest.mark.slow

STAGES = ["ingest", "eeg", "segment"]
DATA = SynthParams(subjects=2, trials=6, seconds=20, seed=3, videos=False)
"""Long enough that s01's ICA runs for a few seconds: the kill lands inside the stage."""
INSIDE = "s01 eeg: starting"


def snapshot(url: str) -> dict[tuple[int, str], tuple[str, dict[str, str]]]:
    """Fingerprint and sha256 of every array of every committed subject-stage."""
    store = FeatureStore.open(url, mode="r")
    return {(s, stage): (record.fingerprint,
                         {name: hashlib.sha256(store.read(s, stage, name).tobytes()).hexdigest()
                          for name in record.arrays})
            for s in store.subjects() for stage in STAGES
            if (record := store.record(s, stage)) is not None}


def worker_running(logs: list[Path], line: str, *, timeout: float) -> int:
    """The index of the worker whose log shows ``line`` first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, log in enumerate(logs):
            if log.exists() and line in log.read_text(errors="replace"):
                return i
        time.sleep(0.05)
    raise TimeoutError(f"no worker logged {line!r} in {timeout} s")


def test_a_killed_dask_worker_inside_a_subject_stage_leaves_the_store_as_without_the_kill(
    tmp_path: Path, prefect_api: tuple[str, dict[str, str]]
) -> None:
    deap = tmp_path / "DEAP"
    write_synthetic_deap(out=deap, params=DATA)
    reference = str(tmp_path / "reference.zarr")
    assert run_chain_inline(PreprocessConfig(deap=deap, store=reference, stages=STAGES)).ok

    url = str(tmp_path / "dask.zarr")
    with nullcontext(prefect_api) as (_, env):  # the session's real Prefect API
        with dask_cluster_processes(tmp_path, env, workers=2, nanny=False) as (address, workers):
            with (tmp_path / "cli.log").open("w") as log:
                run = subprocess.Popen(
                    [str(BIN / "milmer"), "preprocess", "--deap", str(deap), "--store", url,
                     "--stages", ",".join(STAGES), "--dask-address", address, "--json"],
                    env=env, stdout=subprocess.PIPE, stderr=log, text=True)
                try:
                    victim = worker_running([tmp_path / f"worker-{i}.log" for i in range(2)], INSIDE,
                                            timeout=240)
                    os.killpg(workers[victim].pid, signal.SIGKILL)
                    workers[victim].wait(timeout=30)
                    killed_inside = FeatureStore.open(url, mode="r").record(1, "eeg") is None
                    stdout, _ = run.communicate(timeout=400)
                finally:
                    if run.poll() is None:
                        run.kill()
    cli_log = (tmp_path / "cli.log").read_text()
    assert killed_inside, "the kill should land before s01 eeg commits"
    assert run.returncode == 0, stdout[-3000:] + cli_log[-3000:]
    summary = RunSummary.model_validate_json(stdout[stdout.rfind('{\n  "outcomes"'):])
    outcomes = {(o.subject, o.stage.value): o.status for o in summary.outcomes}
    assert sorted(outcomes) == sorted((s, stage) for s in (1, 2) for stage in STAGES)
    logs = [(tmp_path / f"worker-{i}.log").read_text(errors="replace") for i in range(2)]
    assert INSIDE in logs[1 - victim], "Dask should rerun s01 eeg on the other worker"
    # Each subject-stage was computed (written and committed) exactly once, on one worker or the
    # other. Results the dead worker held are recomputed by Dask: those find their commit and skip.
    for (subject, stage), status in outcomes.items():
        computed = sum(log.count(f"s{subject:02d} {stage}: computed in ") for log in logs)
        assert computed == 1, (subject, stage, computed)
        if status == "skipped":
            assert f"s{subject:02d} {stage}: computed in " in logs[victim], (subject, stage)
        else:
            assert status == "computed", (subject, stage, status)
    assert outcomes[(1, "eeg")] == "computed"
    rerun = next(o for o in summary.outcomes if (o.subject, o.stage.value) == (1, "eeg"))
    assert rerun.waited_for == [], rerun.wait_note()  # the dead worker's locks died with it
    assert verify_store(FeatureStore.open(url, mode="r")) == []
    assert snapshot(url) == snapshot(reference)
