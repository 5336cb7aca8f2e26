"""DEAP's MATLAB files (data_preprocessed_matlab/sNN.mat): read where no .dat is, checked alike."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from pipeline.readers import deap_format as fmt
from pipeline.readers.deap import find_layout, load_subject, scan_deap, subjects_in
from pipeline.errors import DeapInputError
from pipeline.synth import SynthParams, write_synthetic_deap

PARAMS = SynthParams(subjects=2, trials=3, seconds=3, seed=4, videos=False)


@pytest.fixture(scope="module")
def dat_and_mat(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same synthetic subjects written once as .dat files and once as .mat files only."""
    base = tmp_path_factory.mktemp("mat")
    write_synthetic_deap(out=base / "dat", params=PARAMS)
    write_synthetic_deap(out=base / "mat", params=PARAMS.model_copy(update={"format": "mat"}))
    return base / "dat", base / "mat"


def mat_path(root: Path, subject: int) -> Path:
    return root / fmt.PREPROCESSED_MATLAB_DIR / fmt.mat_name(subject)


def test_synth_writes_only_the_mat_folder_with_format_mat(
    dat_and_mat: tuple[Path, Path], tmp_path: Path
) -> None:
    _, mat = dat_and_mat
    assert not (mat / fmt.PREPROCESSED_DIR).exists()
    assert sorted(p.name for p in (mat / fmt.PREPROCESSED_MATLAB_DIR).iterdir()) == [
        "s01.mat", "s02.mat"]
    assert mat_path(mat, 1).read_bytes()[:10] == b"MATLAB 5.0"
    again = tmp_path / "again"
    write_synthetic_deap(out=again, params=PARAMS.model_copy(update={"format": "mat"}))
    assert mat_path(again, 2).read_bytes() == mat_path(mat, 2).read_bytes()  # no timestamp inside


def test_a_mat_only_folder_is_read_equal_to_the_dat_one(dat_and_mat: tuple[Path, Path]) -> None:
    dat, mat = dat_and_mat
    layout = find_layout(mat)
    assert layout.preprocessed_dir is None
    assert layout.matlab_dir == (mat / fmt.PREPROCESSED_MATLAB_DIR).resolve()
    assert subjects_in(layout) == [1, 2]
    for subject in (1, 2):
        from_dat, from_mat = load_subject(dat, subject), load_subject(mat, subject)
        assert from_mat.dat.path == mat_path(mat, subject).resolve()
        np.testing.assert_array_equal(from_mat.dat.data, from_dat.dat.data)
        np.testing.assert_array_equal(from_mat.dat.labels, from_dat.dat.labels)
        assert from_mat.dat.data.dtype == np.float64
        assert [t.model_dump() for t in from_mat.info.trials] == [
            t.model_dump() for t in from_dat.info.trials]


def test_the_scan_says_which_format_it_read(dat_and_mat: tuple[Path, Path], tmp_path: Path) -> None:
    dat, mat = dat_and_mat
    assert [s.preprocessed_format for s in scan_deap(dat).subjects] == ["dat", "dat"]
    mat_scan = scan_deap(mat)
    assert mat_scan.usable and [s.preprocessed_format for s in mat_scan.subjects] == ["mat", "mat"]
    report = mat_scan.model_dump(mode="json")
    assert report["layout"]["matlab_dir"].endswith(fmt.PREPROCESSED_MATLAB_DIR)
    assert report["subjects"][0]["preprocessed_path"].endswith("s01.mat")
    assert report["subjects"][0]["preprocessed_format"] == "mat"
    # Both present: the .dat is read unless the .mat is asked for; a .mat fills a missing .dat.
    both = tmp_path / "DEAP"
    shutil.copytree(dat, both)
    shutil.copytree(mat / fmt.PREPROCESSED_MATLAB_DIR, both / fmt.PREPROCESSED_MATLAB_DIR)
    (both / fmt.PREPROCESSED_DIR / "s02.dat").unlink()
    assert [s.preprocessed_format for s in scan_deap(both).subjects] == ["dat", "mat"]
    asked = scan_deap(both, preprocessed_format="mat")
    assert [s.preprocessed_format for s in asked.subjects] == ["mat", "mat"]


def rewrite_mat(change: Callable[[dict], dict]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        arrays = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
        savemat(path, change(arrays))
    return apply


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def with_nan(arrays: dict) -> dict:
    arrays["data"][1, 3, 200] = np.nan
    return arrays


BROKEN_MATS = {
    "truncated": (truncate, "not a readable MATLAB v5 file"),
    "empty": (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "not a mat": (lambda p: p.write_bytes(b"\x80\x02}q\x00." * 40), "not a readable MATLAB v5 file"),
    "v7.3": (lambda p: p.write_bytes(b"MATLAB 7.3 MAT-file".ljust(116) + b"\0" * 8 + b"\x00\x02IM"
                                     + b"\0" * 400), "MATLAB v7.3 (HDF5)"),
    "labels missing": (rewrite_mat(lambda a: {"data": a["data"]}), "missing key(s) 'labels'"),
    "wrong channels": (rewrite_mat(lambda a: {**a, "data": a["data"][:, :32]}),
                       "expected (trials, 40 channels, samples)"),
    "integer data": (rewrite_mat(lambda a: {**a, "data": a["data"].astype(np.int32)}),
                     "dtype int32, expected floating point"),
    "NaN": (rewrite_mat(with_nan), "NaN/inf value(s), first at trial 2, channel F7, sample 200"),
    "rating out of range": (rewrite_mat(lambda a: {**a, "labels": a["labels"] * 0 + 9.5}),
                            "outside [1, 9]"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_MATS))
def test_a_broken_mat_fails_that_subject_with_the_file_named(
    dat_and_mat: tuple[Path, Path], tmp_path: Path, case: str
) -> None:
    root = tmp_path / "DEAP"
    shutil.copytree(dat_and_mat[1], root)
    corrupt, message = BROKEN_MATS[case]
    corrupt(mat_path(root, 2))
    scan = scan_deap(root)
    assert scan.usable_subjects == [1]  # one bad subject never stops the others
    (error,) = [p for p in scan.all_problems() if p.subject == 2 and p.severity == "error"]
    assert "s02.mat" in str(error) and message in str(error)
    with pytest.raises(DeapInputError, match="s02.mat") as raised:
        load_subject(root, 2)
    assert message in str(raised.value)


def test_a_mat_only_folder_runs_the_eeg_stages_and_a_broken_mat_fails_only_its_subject(
    dat_and_mat: tuple[Path, Path], tmp_path: Path
) -> None:
    from flows.config import PreprocessConfig
    from flows.preprocess import run_chain_inline
    from store_schema.engine.store import FeatureStore

    dat, mat = dat_and_mat
    stages = ["ingest", "eeg", "segment"]
    from_mat = run_chain_inline(PreprocessConfig(deap=mat, store=str(tmp_path / "mat.zarr"), stages=stages))
    from_dat = run_chain_inline(PreprocessConfig(deap=dat, store=str(tmp_path / "dat.zarr"), stages=stages))
    assert from_mat.ok and from_dat.ok, from_mat.markdown()
    mat_store, dat_store = FeatureStore.open(str(tmp_path / "mat.zarr")), FeatureStore.open(str(tmp_path / "dat.zarr"))
    record = mat_store.record(1, "ingest")
    assert set(record.inputs) == {"mat", "ratings"} and record.extra["preprocessed_format"] == "mat"
    for subject in (1, 2):
        np.testing.assert_array_equal(mat_store.read(subject, "segment", "eeg"),
                                      dat_store.read(subject, "segment", "eeg"))

    broken = tmp_path / "broken"
    shutil.copytree(mat, broken)
    mat_path(broken, 2).write_bytes(mat_path(broken, 2).read_bytes()[:200])  # truncated
    summary = run_chain_inline(PreprocessConfig(deap=broken, store=str(tmp_path / "b.zarr"), stages=stages))
    status = {(o.subject, o.stage.value): o.status for o in summary.outcomes}
    assert all(status[(1, s)] == "computed" for s in stages)
    failure = next(o for o in summary.outcomes if o.subject == 2 and o.stage.value == "ingest")
    assert failure.status == "failed" and "s02.mat" in failure.error
