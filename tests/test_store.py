"""The feature store contract: validated writes, commit-last, readers see only committed data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from pydantic import BaseModel

from store_schema.errors import StoreError
from store_schema.contract.layout import SCHEMA_VERSION
from store_schema.run.runner import StageOutput, run_stage
from store_schema.engine.store import FeatureStore
from store_schema.engine.verify import pending_stages, repair_store, verify_store
from tests.conftest import ica_solution

T, N = 3, 128 * 7


def ingest_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "eeg": rng.normal(size=(T, 32, N)).astype("f4"),
        "eog": rng.normal(size=(T, 2, N)).astype("f4"),
        "ratings": rng.uniform(1, 9, size=(T, 4)),
        "experiment_id": np.arange(1, T + 1, dtype="i4"),
        "presentation_trial": np.array([2, 3, 1], dtype="i4"),
    }


def eeg_arrays() -> dict[str, np.ndarray]:
    return {"eeg": np.ones((T, 32, N), "f4"), "ica_excluded": np.array([0, 3], "i4"),
            "ica_scores": np.zeros((2, 20), "f4"), **ica_solution(20)}


def write(store: FeatureStore, stage: str, arrays, *, subject: int = 1, inputs=None, params=None):
    return store.write_stage(subject=subject, stage=stage, arrays=arrays, params=params or {"a": 1},
                             inputs=inputs or {"dat": "stat:1:2"}, code_version="1",
                             libraries={"numpy": np.__version__}, wall_seconds=0.5)


@pytest.fixture()
def store(tmp_path: Path) -> FeatureStore:
    return FeatureStore.open(str(tmp_path / "store.zarr"))


def test_written_stage_reads_back_and_records_its_provenance(store: FeatureStore) -> None:
    arrays = ingest_arrays()
    record = write(store, "ingest", arrays)
    assert store.state(1, "ingest") == "committed"
    for name, data in arrays.items():
        np.testing.assert_array_equal(store.read(1, "ingest", name), data)
    assert record.fingerprint == record.expected_fingerprint()
    assert record.arrays["eeg"].shape == (T, 32, N) and record.arrays["eeg"].dtype == "float32"
    assert record.params == {"a": 1} and record.inputs == {"dat": "stat:1:2"}
    reopened = FeatureStore.open(store.url, mode="r")
    assert reopened.record(1, "ingest") == record
    assert verify_store(reopened) == []


def test_uncommitted_stage_is_invisible_to_readers(store: FeatureStore) -> None:
    write(store, "ingest", ingest_arrays())
    store.uncommit(1, "ingest")
    assert store.state(1, "ingest") == "uncommitted"
    assert store.committed_subjects("ingest") == []
    with pytest.raises(StoreError, match="not committed"):
        store.read(1, "ingest", "eeg")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("eog"), r"missing \['eog'\]"),
        (lambda a: a.update(eeg=np.zeros((T, 31, N), "f4")), "dim 'channel' is 31, expected 32"),
        (lambda a: a.update(ratings=np.zeros((T + 1, 4))), "dim 'trial' is 4, expected 3"),
        (lambda a: a.update(experiment_id=np.ones(T, "f8")), "dtype float64 cannot be stored as int32"),
    ],
)
def test_write_rejects_arrays_that_break_the_schema(store: FeatureStore, change, message: str) -> None:
    write(store, "ingest", ingest_arrays(0))
    arrays = ingest_arrays(1)
    change(arrays)
    with pytest.raises(StoreError, match=message):
        write(store, "ingest", arrays)
    # nothing committed was touched by the refused write
    np.testing.assert_array_equal(store.read(1, "ingest", "eeg"), ingest_arrays(0)["eeg"])


def test_store_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = str(tmp_path / "new.zarr")
    zarr.open_group(url, mode="w").attrs.update({"schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(StoreError, match="newer schema version"):
        FeatureStore.open(url)


def test_store_from_schema_version_1_says_to_rebuild_eeg(tmp_path: Path) -> None:
    url = str(tmp_path / "old.zarr")
    store = FeatureStore.open(url)
    write(store, "ingest", ingest_arrays(0))
    zarr.open_group(url, mode="a").attrs.update({"schema_version": 1})
    for mode in ("r", "a"):
        with pytest.raises(StoreError, match=r"older schema version \(1, .*version 2: the eeg "
                           r"stage keeps its ICA solution.*rebuild eeg"):
            FeatureStore.open(url, mode=mode)


def test_a_folder_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    url = str(tmp_path / "other.zarr")
    zarr.open_group(url, mode="w").create_group("something")
    with pytest.raises(StoreError, match="not a milmer feature store"):
        FeatureStore.open(url)
    with pytest.raises(StoreError, match="no feature store here"):
        FeatureStore.open(str(tmp_path / "absent.zarr"), mode="r")


def test_fsspec_memory_url_works() -> None:
    store = FeatureStore.open("memory://milmer-test-store")
    write(store, "ingest", ingest_arrays())
    assert store.committed_subjects("ingest") == [1]


class Params(BaseModel):
    cutoff: float = 1.0


def test_runner_skips_a_matching_fingerprint_without_computing(store: FeatureStore) -> None:
    calls = []

    def compute() -> StageOutput:
        calls.append(1)
        return StageOutput(arrays=ingest_arrays())

    kwargs = dict(subject=1, stage="ingest", code_version="1", inputs={"dat": "x"}, compute=compute)
    assert run_stage(store, params=Params(), **kwargs).status == "computed"
    assert run_stage(store, params=Params(), **kwargs).status == "skipped"
    assert run_stage(store, params=Params(cutoff=2.0), **kwargs).status == "computed"
    assert run_stage(store, params=Params(cutoff=2.0), force=True, **kwargs).status == "computed"
    assert len(calls) == 3


def test_runner_failure_keeps_the_committed_stage(store: FeatureStore) -> None:
    write(store, "ingest", ingest_arrays(0))
    before = store.record(1, "ingest")

    def broken() -> StageOutput:
        raise ValueError("boom")

    outcome = run_stage(store, subject=1, stage="ingest", params=Params(), code_version="2",
                        inputs={"dat": "y"}, compute=broken)
    assert outcome.status == "failed" and outcome.error == "ValueError: boom"
    assert store.record(1, "ingest") == before


# -- verify finds each kind of damage --------------------------------------------------------


def committed_pair(store: FeatureStore) -> Path:
    ingest = write(store, "ingest", ingest_arrays())
    write(store, "eeg", eeg_arrays(), inputs={"ingest": ingest.fingerprint})
    assert verify_store(store) == []
    return Path(store.url) / "subjects" / "s01"


# Each kind of damage: what it does to the committed pair (s01 ingest + eeg) and which stage it breaks.


def delete_a_chunk(store: FeatureStore, root: Path) -> None:
    (root / "ingest" / "eeg" / "c" / "1" / "0" / "0").unlink()


def truncate_a_chunk(store: FeatureStore, root: Path) -> None:
    chunk = root / "eeg" / "eeg" / "c" / "2" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:20])


def change_a_shape(store: FeatureStore, root: Path) -> None:
    meta_path = root / "eeg" / "ica_scores" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["shape"] = [3, 20]
    meta_path.write_text(json.dumps(meta))


def change_a_dtype(store: FeatureStore, root: Path) -> None:
    meta_path = root / "eeg" / "ica_scores" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["data_type"] = "int32"
    meta_path.write_text(json.dumps(meta))


def edit_a_commit_record(store: FeatureStore, root: Path) -> None:
    group = store.stage_group(1, "ingest")
    commit = dict(group.attrs["commit"])
    commit["params"] = {"a": 2}
    group.attrs.update({"commit": commit})


def recompute_the_upstream(store: FeatureStore, root: Path) -> None:
    write(store, "ingest", ingest_arrays(seed=5), inputs={"dat": "stat:9:9"})


def test_verify_finds_a_deleted_chunk(store: FeatureStore) -> None:
    delete_a_chunk(store, committed_pair(store))
    assert [str(p) for p in verify_store(store)] == [
        "subjects/s01/ingest/eeg: 1 of 3 chunk(s) missing"]


def test_verify_finds_a_truncated_chunk(store: FeatureStore) -> None:
    truncate_a_chunk(store, committed_pair(store))
    problems = [str(p) for p in verify_store(store)]
    assert len(problems) == 1 and problems[0].startswith("subjects/s01/eeg/eeg: chunk at index 2 unreadable")


def test_verify_finds_a_wrong_shape(store: FeatureStore) -> None:
    change_a_shape(store, committed_pair(store))
    problems = {str(p) for p in verify_store(store)}
    assert "subjects/s01/eeg/ica_scores: shape (3, 20) differs from the committed (2, 20)" in problems
    assert "subjects/s01/eeg/ica_scores: dim 'eog' is 3, expected 2" in problems


def test_verify_finds_a_wrong_dtype(store: FeatureStore) -> None:
    change_a_dtype(store, committed_pair(store))
    problems = [str(p) for p in verify_store(store)]
    assert "subjects/s01/eeg/ica_scores: dtype int32, the schema says float32" in problems
    assert all(p.startswith("subjects/s01/eeg/ica_scores: ") for p in problems)


def test_verify_finds_an_edited_commit_record(store: FeatureStore) -> None:
    edit_a_commit_record(store, committed_pair(store))
    assert [str(p) for p in verify_store(store)] == [
        "subjects/s01/ingest: commit marker's fingerprint does not match its recorded stage, "
        "parameters and inputs (edited or corrupt record)"]


def test_verify_finds_a_stale_downstream_stage(store: FeatureStore) -> None:
    recompute_the_upstream(store, committed_pair(store))
    assert [str(p) for p in verify_store(store)] == [
        "subjects/s01/eeg: stale: upstream stage 'ingest' was recomputed after it"]


# -- repair drops exactly the damaged commit markers ---------------------------------------


@pytest.mark.parametrize(
    ("damage", "broken"),
    [(delete_a_chunk, "ingest"), (truncate_a_chunk, "eeg"), (change_a_shape, "eeg"),
     (change_a_dtype, "eeg"), (edit_a_commit_record, "ingest"), (recompute_the_upstream, "eeg")],
)
def test_repair_uncommits_exactly_the_damaged_stage(store: FeatureStore, damage, broken: str) -> None:
    damage(store, committed_pair(store))
    problems = verify_store(store)
    repairs = repair_store(store, problems)
    assert [(r.subject, r.stage.value) for r in repairs] == [(1, broken)]
    assert repairs[0].problems == [p for p in problems if p.stage.value == broken]
    assert str(repairs[0]).startswith(f"repaired subjects/s01/{broken}: commit marker dropped")
    other = "eeg" if broken == "ingest" else "ingest"
    assert store.state(1, broken) == "uncommitted" and store.state(1, other) == "committed"
    assert verify_store(store) == []
    # an uncommitted upstream leaves its committed downstream pending, not broken
    assert [str(p) for p in pending_stages(store)] == (
        ["subjects/s01/eeg: upstream stage 'ingest' is not committed; the next `milmer preprocess` "
         "recomputes it, then keeps this stage if its fingerprint comes out the same"]
        if broken == "ingest" else [])
    assert repair_store(store, problems) == []  # already uncommitted: nothing more to drop


def test_repair_leaves_a_stage_that_was_rewritten_since_verify_found_it(store: FeatureStore) -> None:
    truncate_a_chunk(store, committed_pair(store))
    problems = verify_store(store)
    ingest = store.record(1, "ingest")
    write(store, "eeg", eeg_arrays(), inputs={"ingest": ingest.fingerprint})  # a run rewrote it
    assert repair_store(store, problems) == []
    assert store.state(1, "eeg") == "committed" and verify_store(store) == []
