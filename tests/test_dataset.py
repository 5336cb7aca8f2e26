"""``from train import StoreDataset``: the store as a PyTorch Dataset for models of one's own.

The documented example (docs/dataset.md, the same file as examples/own_model.py) runs here as a
user runs it, through DataLoaders with 2 worker processes, on the session's tiny planted store.
"""

from __future__ import annotations

import importlib.util
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from store_schema.contract.layout import Stage
from store_schema.engine.store import FeatureStore
from store_schema.errors import StoreError
from train import StoreDataset
from train.data import StoreData
from train.synthetic import write_planted_store

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "own_model.py"


def test_the_documented_example_is_the_example_file_and_trains_through_two_workers(
        tiny_planted_store: str) -> None:
    doc = (REPO / "docs" / "dataset.md").read_text()
    block = re.search(r"<!-- examples/own_model.py -->\s*```python\n(.*?)```", doc, re.S)
    assert block is not None, "docs/dataset.md must show examples/own_model.py"
    assert block.group(1) == EXAMPLE.read_text(), "docs/dataset.md and examples/own_model.py differ"

    spec = importlib.util.spec_from_file_location("own_model", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)  # type: ignore[union-attr]
    torch.manual_seed(0)
    result = example.main(tiny_planted_store, epochs=10, workers=2)
    losses = result["losses"]
    assert len(losses) == 10 and all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]  # the user's model fits the planted store's training rows
    assert 0.0 <= result["accuracy"] <= 1.0


def test_items_through_two_workers_equal_the_stores_arrays(tiny_planted_store: str) -> None:
    dataset = StoreDataset(tiny_planted_store, labels="deap2-arousal")
    loader = DataLoader(dataset, batch_size=5, num_workers=2)
    batches = list(loader)
    got = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    store = FeatureStore.open(tiny_planted_store, mode="r")
    data = StoreData.open(tiny_planted_store, labels="deap2-arousal")
    assert len(dataset) == len(data) == 32
    for s in (1, 2):
        rows = (got["subject"] == s).numpy()
        assert np.array_equal(got["eeg"][rows].numpy(), store.read(s, Stage.segment, "eeg"))
        assert np.array_equal(got["tokens"][rows].numpy(), store.read(s, Stage.tokens, "tokens"))
        assert np.array_equal(got["detected"][rows].numpy(), store.read(s, Stage.faces, "detected"))
        assert np.array_equal(got["trial"][rows].numpy(), store.read(s, Stage.segment, "trial_index"))
        assert np.array_equal(got["segment"][rows].numpy(),
                              store.read(s, Stage.segment, "segment_index"))
    assert got["eeg"].dtype == torch.float32 and got["eeg"].shape[1:] == (32, 384)
    assert got["tokens"].dtype == torch.float16 and got["tokens"].shape[1:] == (10, 49, 768)
    assert np.array_equal(got["label"].numpy(), data.labels)
    assert dataset.class_names == ("low", "high") and got["has_video"].all()


def test_crops_only_when_asked_and_a_pickled_dataset_reopens_the_store_itself(
        tiny_planted_store: str) -> None:
    eeg_only = StoreDataset(tiny_planted_store, modalities=("eeg",))
    assert set(eeg_only[0]) == {"eeg", "label", "subject", "trial", "segment", "has_video", "detected"}
    with_crops = StoreDataset(tiny_planted_store, modalities=("eeg", "crops"))
    item = with_crops[-1]
    assert item["crops"].dtype == torch.uint8 and item["crops"].shape == (10, 224, 224, 3)
    # what a spawned DataLoader worker receives: the index and the URL, never the open store
    state = pickle.dumps(with_crops)
    assert b"FeatureStore" not in state
    clone = pickle.loads(state)
    assert torch.equal(clone[-1]["eeg"], item["eeg"]) and clone[-1]["subject"] == item["subject"]
    with pytest.raises(ValueError, match="modalities"):
        StoreDataset(tiny_planted_store, modalities=("eeg", "audio"))
    with pytest.raises(IndexError):
        eeg_only[len(eeg_only)]


def test_a_fold_of_a_manifest_indexes_exactly_its_trials(tiny_planted_store: str) -> None:
    dataset = StoreDataset(tiny_planted_store, modalities=("eeg",))
    manifest = dataset.splits("trial", folds=4, seed=1)
    fold = manifest["folds"][2]
    for part in ("train", "validation", "test"):
        subset = dataset.subset(manifest, 2, part)
        seen = {(item["subject"], item["trial"]) for item in (subset[i] for i in range(len(subset)))}
        assert seen == {(e["subject"], e["trial"]) for e in fold[part]}
        assert len(subset) == 2 * len(fold[part])  # every segment of those trials


def test_the_dataset_refuses_and_skips_what_training_does(tmp_path: Path) -> None:
    mixed = str(tmp_path / "mixed.zarr")
    write_planted_store(mixed, subjects=2, trials=2, segments_per_trial=1,
                        weights_fingerprint={1: "random:0", 2: "random:1"})
    with pytest.raises(StoreError, match="different Swin weights.*s01.*s02"):
        StoreDataset(mixed)
    assert len(StoreDataset(mixed, subjects=[2])) == 2
    assert len(StoreDataset(mixed, modalities=("eeg",))) == 4  # EEG only: weights do not matter
    # a segment table rewritten after the faces were cut: s01's faces and tokens are stale
    store = FeatureStore.open(mixed)
    arrays = store.read_stage(1, Stage.segment)
    record = store.record(1, Stage.segment)
    arrays["start_s"] = arrays["start_s"] + 1.5
    store.write_stage(subject=1, stage=Stage.segment, arrays=arrays, params=record.params,
                      inputs=record.inputs, code_version=record.code_version,
                      libraries=record.libraries, wall_seconds=0.0, extra=record.extra)
    dataset = StoreDataset(mixed)
    assert dataset.subjects == [2], dataset.skipped
    assert any(line.startswith("s01: faces stage") for line in dataset.skipped), dataset.skipped
    with pytest.raises(StoreError, match="s01 faces stage"):
        StoreDataset(mixed, modalities=("eeg", "crops"))
