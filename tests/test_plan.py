"""`plan_run` (milmer preprocess --plan): each kind of reason a subject-stage would recompute."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from flows.config import PreprocessConfig
from flows.plan import plan_run
from flows.preprocess import run_chain_inline
from pipeline import stages as stage_table
from store_schema.contract.layout import Stage

EEG_STAGES = ["ingest", "eeg", "segment"]


def config(deap: Path, store: Path, **overrides) -> PreprocessConfig:
    overrides.setdefault("stages", EEG_STAGES)
    return PreprocessConfig(deap=deap, store=str(store), subjects=[1], **overrides)


def reasons(deap: Path, store: Path, **overrides) -> dict[str, tuple[str, str]]:
    plan = plan_run(config(deap, store, **overrides))
    return {e.stage.value: (e.action, e.reason) for e in plan.entries}


@pytest.fixture(scope="module")
def built_master(small_deap_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Subject 1's EEG stages, built once for the module (tests plan against copies)."""
    store = tmp_path_factory.mktemp("plan-built") / "store.zarr"
    assert run_chain_inline(config(small_deap_master, store)).ok
    return store


@pytest.fixture()
def built(small_deap: Path, built_master: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the dataset and of the store built from it (copies keep mtimes, so the
    store's stat fingerprints hold for the copied dataset)."""
    store = tmp_path / "store.zarr"
    shutil.copytree(built_master, store)
    return small_deap, store


def test_plan_of_an_empty_store_says_every_stage_is_new(small_deap: Path, tmp_path: Path) -> None:
    found = reasons(small_deap, tmp_path / "store.zarr")
    assert found["ingest"] == ("would compute", "new")
    assert found["eeg"] == ("would compute", "upstream 'ingest' recomputed")
    assert found["segment"] == ("would compute", "upstream 'eeg' recomputed")


def test_plan_after_a_build_is_up_to_date_and_writes_nothing(built: tuple[Path, Path]) -> None:
    deap, store = built
    before = sorted((p, p.stat().st_mtime_ns) for p in store.rglob("*"))
    plan = plan_run(config(deap, store))
    assert plan.up_to_date and plan.counts()["up to date"] == 3
    assert sorted((p, p.stat().st_mtime_ns) for p in store.rglob("*")) == before


def test_plan_names_the_changed_parameter_with_old_and_new_values(built: tuple[Path, Path]) -> None:
    deap, store = built
    found = reasons(deap, store, segment={"window_s": 2.0, "stride_s": 2.0})
    assert found["ingest"] == ("up to date", "")
    assert found["eeg"] == ("up to date", "")
    action, reason = found["segment"]
    assert action == "would compute"
    assert "parameter window_s changed from 3.0 to 2.0" in reason
    assert "parameter stride_s changed from 3.0 to 2.0" in reason


def test_plan_names_an_input_file_that_changed(built: tuple[Path, Path]) -> None:
    deap, store = built
    dat = deap / "data_preprocessed_python" / "s01.dat"
    os.utime(dat, ns=(dat.stat().st_atime_ns, dat.stat().st_mtime_ns + 10**9))
    found = reasons(deap, store)
    assert found["ingest"] == ("would compute", "input file dat changed")
    assert found["eeg"] == ("would compute", "upstream 'ingest' recomputed")


def test_plan_names_an_upstream_recomputed_by_another_run(built: tuple[Path, Path]) -> None:
    deap, store = built
    assert run_chain_inline(config(deap, store, stages=["eeg"],
                                   eeg={"l_freq": 2.0})).ok  # eeg rewritten, segment not
    found = reasons(deap, store, eeg={"l_freq": 2.0})
    assert found["eeg"] == ("up to date", "")
    assert found["segment"] == ("would compute", "upstream 'eeg' was recomputed since")


def test_plan_names_a_bumped_code_version(built: tuple[Path, Path],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    deap, store = built
    current = stage_table.STAGE_TABLE[Stage.eeg].code_version
    later = str(int(current) + 1)
    bumped = dataclasses.replace(stage_table.STAGE_TABLE[Stage.eeg], code_version=later)
    monkeypatch.setitem(stage_table.STAGE_TABLE, Stage.eeg, bumped)
    found = reasons(deap, store)
    assert found["eeg"] == ("would compute", f"code version bumped from {current} to {later}")


def test_plan_says_forced(built: tuple[Path, Path]) -> None:
    deap, store = built
    assert reasons(deap, store, force=True)["ingest"] == ("would compute", "forced (--force)")


def test_plan_of_a_stage_whose_upstream_is_missing_says_it_cannot_run(
        small_deap: Path, tmp_path: Path) -> None:
    found = reasons(small_deap, tmp_path / "store.zarr", stages=["segment"])
    action, reason = found["segment"]
    assert action == "cannot run" and "stage 'eeg' is not committed" in reason


def test_deciding_what_to_compute_imports_no_mne_opencv_or_torch(built: tuple[Path, Path]) -> None:
    """An up-to-date run only compares fingerprints: planning every stage, faces' model hash and
    tokens' weights included, must not pay for MNE, OpenCV, MediaPipe or torch (~1.5 s together),
    which only a stage that computes needs."""
    import subprocess
    import sys

    deap, store = built
    script = (
        "import sys\n"
        "from flows.config import PreprocessConfig\n"
        "from flows.plan import plan_run\n"
        f"plan = plan_run(PreprocessConfig(deap={str(deap)!r}, store={str(store)!r}, subjects=[1], "
        "weights='random:3'))\n"
        "assert {e.stage.value for e in plan.entries} == {'ingest', 'eeg', 'segment', 'faces', 'tokens'}\n"
        "from pipeline.stages import tokens\n"  # faces are not committed: name tokens' inputs too
        "tokens.prepare(tokens.TokensSettings(weights='random:3'), None, None)\n"
        "print(sorted(m for m in ('mne', 'cv2', 'mediapipe', 'torch', 'timm') if m in sys.modules))\n")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert loaded.stdout.strip() == "[]", loaded.stderr
