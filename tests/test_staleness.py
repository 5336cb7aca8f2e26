"""One staleness rule for the runner, verify and train, on a store written with the pipeline's
input names (train.synthetic's planted store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from store_schema.contract.layout import STAGE_ORDER
from store_schema.contract.staleness import StaleInput, find_stale_input, stale_inputs, stale_reason
from store_schema.engine.store import FeatureStore
from train.synthetic import write_planted_store


@pytest.fixture()
def store(tmp_path: Path) -> FeatureStore:
    return write_planted_store(str(tmp_path / "s.zarr"), subjects=1, trials=4, segments_per_trial=2)


def rewrite(store: FeatureStore, stage: str, **changes) -> None:  # noqa: ANN003
    record = store.record(1, stage)
    store.write_stage(subject=1, stage=stage, arrays={**store.read_stage(1, stage), **changes.pop("arrays", {})},
                      params={**record.params, **changes.pop("params", {})}, inputs=record.inputs,
                      code_version=record.code_version, libraries=record.libraries, wall_seconds=0.0,
                      extra=record.extra)


def test_a_store_written_with_the_pipelines_input_names_is_current(store: FeatureStore) -> None:
    assert [stale_reason(store, 1, stage) for stage in STAGE_ORDER] == [None] * 5
    assert stale_reason(store, 2, "eeg") == "subjects/s02/eeg is not committed"


def test_a_recomputed_upstream_makes_exactly_its_readers_stale(store: FeatureStore) -> None:
    rewrite(store, "eeg", params={"l_freq": 2.0})  # new fingerprint, same arrays
    assert stale_reason(store, 1, "segment") == "upstream stage 'eeg' was recomputed after it"
    assert stale_reason(store, 1, "faces") is None  # faces read the segment table, not the EEG


def test_new_windows_make_the_faces_stale_through_the_segment_table(store: FeatureStore) -> None:
    start = store.read(1, "segment", "start_s")
    rewrite(store, "segment", arrays={"start_s": start + 0.5})
    assert stale_reason(store, 1, "faces") == "the segment table changed after it was computed"
    assert stale_reason(store, 1, "tokens") is None  # still what its faces stage says


def test_an_uncommitted_upstream_and_a_record_without_the_input(store: FeatureStore) -> None:
    store.uncommit(1, "faces")
    assert stale_reason(store, 1, "tokens") == "upstream stage 'faces' is not committed"
    found = find_stale_input(store, 1, "tokens", store.record(1, "tokens").inputs)
    assert found == StaleInput("faces", found.upstream, committed=False)
    assert stale_inputs(store, 1, "segment", {}) is None  # the runner's check: names only
    assert "names no 'eeg' input" in stale_inputs(store, 1, "segment", {}, require_all=True)


def test_inputs_about_to_be_recorded_are_checked_like_recorded_ones(store: FeatureStore) -> None:
    inputs = dict(store.record(1, "segment").inputs)
    assert stale_inputs(store, 1, "segment", inputs) is None
    assert stale_inputs(store, 1, "segment", {**inputs, "eeg": "sha:old"}) == (
        "upstream stage 'eeg' was recomputed after it")
    assert np.array_equal(store.read(1, "segment", "trial_index"), np.repeat(np.arange(4), 2))
