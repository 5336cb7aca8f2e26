"""EEG part of the store built from synthetic DEAP: incremental rebuild and bad input."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flows.config import PreprocessConfig
from flows.preprocess import RunSummary, run_chain_inline
from pipeline.readers import deap_format as fmt
from store_schema.engine.store import FeatureStore
from store_schema.engine.verify import verify_store
from tests.conftest import SMALL

EEG_STAGES = ["ingest", "eeg", "segment"]


def run(deap: Path, store: Path, **overrides) -> RunSummary:
    overrides.setdefault("stages", EEG_STAGES)  # the face stage has its own tests (test_faces.py)
    return run_chain_inline(PreprocessConfig(deap=deap, store=str(store), **overrides))


def statuses(summary: RunSummary) -> dict[tuple[int, str], str]:
    return {(o.subject, o.stage.value): o.status for o in summary.outcomes}


def store_files(store: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(store)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in store.rglob("*") if p.is_file()}


def everything(status: str, subjects=(1, 2)) -> dict[tuple[int, str], str]:
    return {(s, stage): status for s in subjects for stage in EEG_STAGES}


@pytest.fixture(scope="module")
def built_master(small_deap_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every EEG stage of both subjects, built once for the module (tests change copies)."""
    store = tmp_path_factory.mktemp("built") / "store.zarr"
    first = run(small_deap_master, store)
    assert statuses(first) == everything("computed")
    return store


@pytest.fixture()
def built(small_deap: Path, built_master: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the dataset and of the store built from it (copies keep mtimes, so the
    store's stat fingerprints hold for the copied dataset)."""
    store = tmp_path / "store.zarr"
    shutil.copytree(built_master, store)
    return small_deap, store


def test_first_run_builds_a_verified_store_with_the_segment_table(built) -> None:
    deap, store_path = built
    store = FeatureStore.open(str(store_path), mode="r")
    assert verify_store(store) == []
    n_windows = SMALL.seconds // 3
    for subject in (1, 2):
        segments = store.read(subject, "segment", "eeg")
        assert segments.shape == (SMALL.trials * n_windows, 32, 384) and segments.dtype == np.float32
        with (deap / fmt.PREPROCESSED_DIR / fmt.dat_name(subject)).open("rb") as f:
            labels = pickle.load(f, encoding="latin1")["labels"]
        trial = store.read(subject, "segment", "trial_index")
        np.testing.assert_array_equal(store.read(subject, "segment", "valence"), labels[trial, 0])
        np.testing.assert_array_equal(store.read(subject, "segment", "arousal"), labels[trial, 1])
        np.testing.assert_array_equal(store.read(subject, "segment", "experiment_id"), trial + 1)
        np.testing.assert_allclose(store.read(subject, "segment", "start_s"),
                                   3.0 * store.read(subject, "segment", "segment_index"))
        record = store.record(subject, "eeg")
        assert record.extra["ica_excluded"], "ICA should exclude the planted EOG components"
        assert record.extra["eog_reference"] == ["hEOG", "vEOG"]
        assert set(record.libraries) >= {"mne", "numpy", "scipy"}


def test_rerun_with_same_params_rewrites_nothing(built) -> None:
    deap, store = built
    before = store_files(store)
    again = run(deap, store)
    assert statuses(again) == everything("skipped")
    assert store_files(store) == before


def test_changing_a_bandpass_edge_recomputes_eeg_and_segment_not_ingest(built) -> None:
    deap, store = built
    changed = run(deap, store, eeg={"l_freq": 2.0})
    assert statuses(changed) == {
        **everything("computed"), (1, "ingest"): "skipped", (2, "ingest"): "skipped"}


def test_changing_the_window_recomputes_only_segments(built) -> None:
    deap, store = built
    changed = run(deap, store, segment={"window_s": 2.0, "stride_s": 1.0})
    assert statuses(changed) == {**everything("skipped"), (1, "segment"): "computed",
                                 (2, "segment"): "computed"}
    segments = FeatureStore.open(str(store), mode="r").read(1, "segment", "eeg")
    assert segments.shape[2] == 256


def test_new_dat_content_recomputes_only_that_subjects_chain(built) -> None:
    deap, store = built
    path = deap / fmt.PREPROCESSED_DIR / fmt.dat_name(2)
    with path.open("rb") as f:
        obj = pickle.load(f, encoding="latin1")
    obj["data"][:, :32] *= 1.5
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)
    rerun = run(deap, store)
    assert statuses(rerun) == {**everything("skipped", [1]), **everything("computed", [2])}


def test_content_hash_ignores_a_touch_that_stat_fingerprints_see(built, tmp_path: Path) -> None:
    deap, _ = built
    store = tmp_path / "hashed.zarr"
    assert statuses(run(deap, store, content_hash=True)) == everything("computed")
    path = deap / fmt.PREPROCESSED_DIR / fmt.dat_name(1)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert statuses(run(deap, store, content_hash=True)) == everything("skipped")
    assert statuses(run(deap, store))[(1, "ingest")] == "computed"  # stat mode sees the touch


def test_adding_a_subject_computes_only_that_subject(small_deap: Path, tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    assert statuses(run(small_deap, store, subjects=[1])) == everything("computed", [1])
    both = run(small_deap, store)
    assert statuses(both) == {**everything("skipped", [1]), **everything("computed", [2])}


def test_deleting_a_commit_marker_recomputes_that_stage(built) -> None:
    deap, store_path = built
    FeatureStore.open(str(store_path)).uncommit(1, "eeg")
    rerun = run(deap, store_path)
    # ICA is deterministic, so the recomputed eeg stage has the same fingerprint: segment stays.
    assert statuses(rerun) == {**everything("skipped"), (1, "eeg"): "computed"}
    assert verify_store(FeatureStore.open(str(store_path), mode="r")) == []


def test_a_corrupt_subject_fails_alone_and_keeps_its_committed_data(built) -> None:
    deap, store_path = built
    store = FeatureStore.open(str(store_path), mode="r")
    committed = {stage: store.record(2, stage) for stage in EEG_STAGES}
    segments_before = store.read(2, "segment", "eeg")
    path = deap / fmt.PREPROCESSED_DIR / fmt.dat_name(2)
    path.write_bytes(path.read_bytes()[:1000])

    summary = run(deap, store_path)
    assert not summary.ok
    assert statuses(summary)[(1, "segment")] == "skipped"
    failed = {(o.subject, o.stage.value): o.error for o in summary.failures()}
    assert set(failed) == {(2, "ingest"), (2, "eeg"), (2, "segment")}
    assert f"{path}: truncated pickle" in failed[(2, "ingest")]
    assert failed[(2, "eeg")] == "not run: 'ingest' failed"
    assert {stage: store.record(2, stage) for stage in EEG_STAGES} == committed
    np.testing.assert_array_equal(store.read(2, "segment", "eeg"), segments_before)


def test_a_stage_without_its_upstream_fails_with_a_hint(small_deap: Path, tmp_path: Path) -> None:
    summary = run(small_deap, tmp_path / "s.zarr", stages=["eeg"], subjects=[1])
    (outcome,) = summary.outcomes
    assert outcome.status == "failed"
    assert "stage 'ingest' is not committed" in outcome.error and "--stages" in outcome.error


def test_unknown_subject_is_named(small_deap: Path, tmp_path: Path) -> None:
    summary = run(small_deap, tmp_path / "s.zarr", subjects=[1, 7], stages=["ingest"])
    assert statuses(summary) == {(1, "ingest"): "computed", (7, "ingest"): "failed"}
    assert "s07.dat: file not found (unknown subject?)" in summary.failures()[0].error


def test_invalid_parameters_are_rejected_before_any_work(small_deap: Path, tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="l_freq"):
        PreprocessConfig(deap=small_deap, store=str(tmp_path / "s.zarr"), eeg={"l_freq": 60.0})
    with pytest.raises(ValidationError, match="tokens stage needs Swin weights"):
        PreprocessConfig(deap=small_deap, store=str(tmp_path / "s.zarr"), stages=["tokens"])
    with pytest.raises(ValidationError, match="does not exist"):
        PreprocessConfig(deap=small_deap, store=str(tmp_path / "s.zarr"), weights=str(tmp_path / "w.pth"))
    assert not (tmp_path / "s.zarr").exists()


def test_hub_weights_missing_from_the_cache_are_refused_before_any_work(
        small_deap: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ValidationError, match="face-emotion-v12 at revision main is not in the Hugging Face cache"):
        PreprocessConfig(deap=small_deap, store=str(tmp_path / "s.zarr"), weights="face-emotion")
    with pytest.raises(ValidationError, match="expected hf-hub:ORG/NAME"):
        PreprocessConfig(deap=small_deap, store=str(tmp_path / "s.zarr"), tokens={"weights": "hf-hub:x"})
    assert not (tmp_path / "s.zarr").exists()


def milmer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("milmer")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300, env=env)


def test_cli_builds_reports_and_verifies_the_store(small_deap: Path, tmp_path: Path,
                                                   prefect_api: tuple[str, dict[str, str]]) -> None:
    store = tmp_path / "cli.zarr"
    first = milmer("preprocess", "--deap", str(small_deap), "--store", str(store),
                   "--stages", "ingest,eeg,segment", "--json", env=prefect_api[1])
    assert first.returncode == 0, first.stderr
    assert {o["status"] for o in json.loads(first.stdout)["outcomes"]} == {"computed"}
    second = milmer("preprocess", "--deap", str(small_deap), "--store", str(store),
                    "--stages", "ingest,eeg,segment")
    assert second.returncode == 0 and "6 skipped" in second.stdout

    info = milmer("store", "info", str(store), "--json")
    assert info.returncode == 0, info.stderr
    rows = json.loads(info.stdout)["stages"]
    assert [(r["subject"], r["stage"], r["state"]) for r in rows] == [
        (s, stage, "committed") for s in (1, 2) for stage in EEG_STAGES]
    assert all(r["bytes"] > 0 and len(r["fingerprint"]) == 64 for r in rows)

    verify = milmer("store", "verify", str(store))
    assert verify.returncode == 0 and "6 committed subject-stages verified" in verify.stdout
    chunks = [p for p in (store / "subjects" / "s01" / "segment" / "eeg" / "c").rglob("*") if p.is_file()]
    assert len(chunks) == 1
    chunks[0].unlink()
    broken = milmer("store", "verify", str(store))
    assert broken.returncode == 1
    assert "subjects/s01/segment/eeg: 1 of 1 chunk(s) missing" in broken.stdout

    bad = milmer("preprocess", "--deap", str(small_deap), "--store", str(store), "--l-freq", "70")
    assert bad.returncode == 2 and "l_freq" in bad.stderr
