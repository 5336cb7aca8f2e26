"""Crash safety: `milmer preprocess` killed with SIGKILL at named points, then resumed.

Each case runs the real command in a subprocess with ``MILMER_FAILPOINT`` set (see
:mod:`store_schema.engine.failpoints`): the process kills itself with SIGKILL when it reaches that point,
as a power cut or the OOM killer would. After the kill the store must verify clean, training must
see only committed subject-stages, and a re-run must finish the store without recomputing anything
that was committed, ending byte-identical (fingerprints and array checksums) to a run that was
never interrupted. The kills in the faces and tokens stages start from a store whose upstream
stages are already committed (as after an earlier run), so the killed run does only their work.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from flows.config import PreprocessConfig
from flows.preprocess import RunSummary, run_chain_inline
from store_schema.errors import StoreError
from store_schema.contract.layout import Stage
from store_schema.engine.store import FeatureStore
from tests.servers import BIN
from train.data import StoreData

EEG_STAGES = ("ingest", "eeg", "segment")
FACE_STAGES = (*EEG_STAGES, "faces")
ALL_STAGES = (*FACE_STAGES, "tokens")


@dataclass(frozen=True)
class Kill:
    moment: str
    failpoint: str
    stages: tuple[str, ...]
    log_shows: str = ""
    """A progress line the killed run must have logged: it died inside that step, not before."""
    committed_before: tuple[str, ...] = ()
    """Stages the store already holds, committed for both subjects, when the killed run starts
    (the uninterrupted run's, copied): the kill point's upstream is not recomputed by every case."""

    def __str__(self) -> str:
        return self.moment.replace(" ", "-")


# The CLI runs with one worker, so subject-stages start in a fixed order (stage-major: ingest s01,
# ingest s02, eeg s01, ...) and every failpoint is reached at the same place on every run.
KILLS = [
    Kill("during ingest", "subjects/s01/ingest:mid-array", EEG_STAGES),
    Kill("between subjects", "subjects/s02/ingest:before-compute", EEG_STAGES),
    Kill("during ICA", "subjects/s01/eeg:mid-compute", EEG_STAGES, "s01 eeg: band-pass done"),
    Kill("computed, before the write", "subjects/s02/eeg:before-write", EEG_STAGES),
    Kill("after the arrays before the commit", "subjects/s02/segment:after-arrays", EEG_STAGES),
    # Tokens (Swin-tiny on the CPU, ~0.1 s a frame) are left out where the kill is upstream of
    # them: they would only be computed by the re-run, as in the case below.
    Kill("during face detection", "subjects/s02/faces:mid-compute", FACE_STAGES, "s02 faces:",
         committed_before=EEG_STAGES),
    Kill("while writing tokens", "subjects/s01/tokens:mid-array", ALL_STAGES, "s01 tokens: 40 of 40 frames",
         committed_before=FACE_STAGES),
]


def config(deap: Path, store: Path, stages: tuple[str, ...]) -> PreprocessConfig:
    return PreprocessConfig(deap=deap, store=str(store), stages=list(stages),
                            weights="random" if "tokens" in stages else None)


def snapshot(store: Path, stages: tuple[str, ...] = ALL_STAGES) -> dict[tuple[int, str], tuple]:
    """(subject, stage) -> (fingerprint, sha256 of every array's bytes) for committed stages."""
    opened = FeatureStore.open(str(store), mode="r")
    found = {}
    for subject in opened.subjects():
        for stage in stages:
            record = opened.record(subject, stage)
            if record is None:
                continue
            sums = {name: hashlib.sha256(np.ascontiguousarray(opened.read(subject, stage, name))
                                         .tobytes()).hexdigest()
                    for name in sorted(record.arrays)}
            found[(subject, stage)] = (record.fingerprint, sums)
    return found


def statuses(summary: RunSummary) -> dict[tuple[int, str], str]:
    return {(o.subject, o.stage.value): o.status for o in summary.outcomes}


@dataclass(frozen=True)
class Uninterrupted:
    snapshot: dict[tuple[int, str], tuple]
    upstream: dict[tuple[str, ...], Path]
    """The store as it was when the run had committed these stages (a copy, read only)."""


@pytest.fixture(scope="module")
def uninterrupted(small_deap_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Uninterrupted:
    """A run never interrupted, made stage group by stage group (each stage is deterministic, so
    the store is the same as one run's): its snapshot, and a copy of the store after each group."""
    root = tmp_path_factory.mktemp("uninterrupted")
    store = root / "store.zarr"
    upstream = {}
    done: tuple[str, ...] = ()
    for stages in (EEG_STAGES, FACE_STAGES, ALL_STAGES):
        summary = run_chain_inline(config(small_deap_master, store, stages))
        assert statuses(summary) == {(s, stage): "skipped" if stage in done else "computed"
                                     for s in (1, 2) for stage in stages}, summary.outcomes
        done = stages
        if stages != ALL_STAGES:
            upstream[stages] = root / ("upto-" + stages[-1]) / "store.zarr"
            shutil.copytree(store, upstream[stages])
    return Uninterrupted(snapshot(store), upstream)


@pytest.fixture(scope="module")
def prefect_env(prefect_api: tuple[str, dict[str, str]]) -> dict[str, str]:
    """One real Prefect API for every killed run: each CLI run would otherwise start its own."""
    return prefect_api[1]


def run_until_killed(env: dict[str, str], deap: Path, store: Path, kill: Kill, log: Path) -> str:
    args = [str(BIN / "milmer"), "preprocess", "--deap", str(deap), "--store", str(store),
            "--stages", ",".join(kill.stages), "--runner", "threads", "--workers", "1",
            "--verbose"]  # a line per progress note: the log shows where it died
    if "tokens" in kill.stages:
        args += ["--weights", "random"]
    with log.open("w") as out:
        proc = subprocess.Popen(args, env={**env, "MILMER_FAILPOINT": kill.failpoint},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=400)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything the killed process had started
            except ProcessLookupError:
                pass
    output = log.read_text()
    assert proc.returncode == -signal.SIGKILL, f"not killed at {kill.failpoint}:\n{output[-3000:]}"
    return output


def usable_subjects(store: Path, *, needs_tokens: bool) -> list[int]:
    try:
        data = StoreData.open(str(store), needs_tokens=needs_tokens)
    except StoreError as err:
        assert "no usable subject" in str(err)
        return []
    if needs_tokens:  # every listed array reads back
        data.load()
    else:
        data.load_eeg()
    return data.subject_numbers


@pytest.mark.parametrize("kill", KILLS, ids=str)
def test_a_killed_run_leaves_a_sound_store_and_the_rerun_finishes_it_identically(
    kill: Kill, small_deap_master: Path, uninterrupted: Uninterrupted, prefect_env: dict[str, str],
    tmp_path: Path,
) -> None:
    store = tmp_path / "store.zarr"
    if kill.committed_before:
        shutil.copytree(uninterrupted.upstream[kill.committed_before], store)
    output = run_until_killed(prefect_env, small_deap_master, store, kill, tmp_path / "killed.log")
    assert kill.log_shows in output

    where, _ = kill.failpoint.rsplit(":", 1)
    subject, stage = int(where.split("/")[1][1:]), where.split("/")[2]
    opened = FeatureStore.open(str(store), mode="r")
    assert opened.state(subject, stage) != "committed"

    check = subprocess.run([str(BIN / "milmer"), "store", "verify", str(store)],
                           capture_output=True, text=True, env=prefect_env)
    assert check.returncode == 0, check.stdout + check.stderr

    # Training sees exactly the subjects whose needed stages are committed, and reads them.
    committed = {key for key in snapshot(store, kill.stages)}
    assert usable_subjects(store, needs_tokens=False) == sorted(
        s for s in (1, 2) if (s, "segment") in committed)
    if "tokens" in kill.stages:
        assert usable_subjects(store, needs_tokens=True) == sorted(
            s for s in (1, 2) if (s, "tokens") in committed)

    before = snapshot(store, kill.stages)
    rerun = run_chain_inline(config(small_deap_master, store, kill.stages))
    done = statuses(rerun)
    assert {key for key, status in done.items() if status == "skipped"} == set(before), done
    assert {status for key, status in done.items() if key not in before} == {"computed"}, done

    after = snapshot(store, kill.stages)
    assert all(after[key] == value for key, value in before.items())  # nothing committed changed
    assert after == {k: v for k, v in uninterrupted.snapshot.items() if k[1] in kill.stages}


def test_the_kill_points_cover_every_failpoint_and_stage_kind() -> None:
    from store_schema.engine.failpoints import POINTS

    used = {k.failpoint.rsplit(":", 1)[1] for k in KILLS}
    assert used == set(POINTS)
    assert {k.failpoint.split("/")[2].split(":")[0] for k in KILLS} == {s.value for s in Stage}
