"""Split manifests: every run writes ``splits.json``; ``--splits`` reuses one exactly.

The folds of every protocol are checked for disjointness on the tiny planted store (2 subjects x
8 trials x 2 windows); the reuse is checked through ``milmer train`` with narrow EEG heads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import NARROW_HEADS
from train.config import TrainConfig, TrainError
from train.data import StoreData
from train.splits import folds_from_manifest, make_manifest, plan_folds, read_manifest


def _units(entries: list[dict], segments: bool) -> set[tuple[int, ...]]:
    if segments:
        return {(e["subject"], e["trial"], s) for e in entries for s in e["segments"]}
    return {(e["subject"], e["trial"]) for e in entries}


@pytest.mark.parametrize("protocol", ["trial", "segment", "loso"])
def test_folds_are_disjoint_and_test_every_segment_once_under_every_protocol(
        tiny_planted_store: str, protocol: str) -> None:
    data = StoreData.open(tiny_planted_store, needs_tokens=False)
    config = TrainConfig(store=tiny_planted_store, protocol=protocol, folds=4, seed=2)
    folds = plan_folds(data, config)
    manifest = make_manifest(data, folds, protocol=protocol, seed=2, k=4, validation_fraction=0.2)
    segments = protocol == "segment"
    every = {(int(s), int(t), int(g)) for s, t, g in zip(data.subject, data.trial, data.segment_index)}
    tested: list[tuple[int, ...]] = []
    for fold in manifest["folds"]:
        parts = {part: _units(fold[part], segments) for part in ("train", "validation", "test")}
        assert parts["test"] and parts["train"] and parts["validation"]
        assert not parts["train"] & parts["validation"]
        assert not parts["train"] & parts["test"] and not parts["validation"] & parts["test"]
        trials = {part: _units(fold[part], False) for part in parts}
        assert not trials["train"] & trials["validation"]  # validation is whole trials
        if not segments:  # no window of a test trial is ever trained or validated on
            assert not (trials["train"] | trials["validation"]) & trials["test"]
        if protocol == "loso":
            assert len({s for s, _ in trials["test"]}) == 1
            assert not {s for s, _ in trials["test"]} & {s for s, _ in trials["train"] | trials["validation"]}
        rows = {(e["subject"], e["trial"], s) for part in parts for e in fold[part]
                for s in (e["segments"] if segments else [g for (su, t, g) in every
                                                           if (su, t) == (e["subject"], e["trial"])])}
        assert rows == every  # each fold's parts cover every segment
        tested += sorted(parts["test"])
    assert len(tested) == len(set(tested))  # each unit is tested in one fold only
    assert manifest["leaky"] is segments
    # the manifest read back gives the very positions the folds were drawn with
    for drawn, read in zip(folds, folds_from_manifest(data, manifest, where="m")):
        for a, b in ((drawn.train, read.train), (drawn.test, read.test),
                     (drawn.validation, read.validation)):
            assert np.array_equal(a, b)


def _train(*args: str) -> object:
    return CliRunner().invoke(app, ["train", *args])


def test_a_run_writes_splits_json_and_splits_reproduces_its_folds_exactly(
        tiny_planted_store: str, tmp_path: Path) -> None:
    config = tmp_path / "eeg.json"
    config.write_text(json.dumps({"model": {**NARROW_HEADS, "kind": "eeg",
                                            "eeg_tokenizer": "log_power"}, "lr": 1e-3}))
    common = ["--store", tiny_planted_store, "--config", str(config), "--epochs", "1",
              "--device", "cpu", "--no-progress"]
    first = _train(*common, "--out", str(tmp_path / "a"), "--protocol", "segment", "--folds", "2",
                   "--seed", "3")
    assert first.exit_code == 0, first.output
    manifest = read_manifest(tmp_path / "a" / "splits.json")
    assert (manifest["protocol"], manifest["k"], manifest["seed"], manifest["leaky"]) == ("segment", 2, 3, True)
    # seed 0 would deal other folds; --splits takes the manifest's (protocol and k too)
    data = StoreData.open(tiny_planted_store, needs_tokens=False)
    assert not np.array_equal(data.splits("segment", folds=2, seed=0)[0].test,
                              folds_from_manifest(data, manifest, where="a")[0].test)
    again = _train(*common, "--out", str(tmp_path / "b"), "--splits", str(tmp_path / "a" / "splits.json"))
    assert again.exit_code == 0, again.output
    reused = read_manifest(tmp_path / "b" / "splits.json")
    assert reused["folds"] == manifest["folds"] and reused["protocol"] == "segment"
    for f in range(2):
        a, b = (json.loads((tmp_path / run / "folds" / f"fold{f}.json").read_text()) for run in "ab")
        assert a["test_positions"] == b["test_positions"] and a["n_fit"] == b["n_fit"]
        assert a["validation"]["n_segments"] == b["validation"]["n_segments"]
    assert json.loads((tmp_path / "b" / "config.json").read_text())["splits"].endswith("splits.json")


def test_a_malformed_or_foreign_manifest_is_refused_in_one_line(
        tiny_planted_store: str, tmp_path: Path) -> None:
    from train import StoreDataset

    manifest = StoreDataset(tiny_planted_store, modalities=("eeg",)).splits("trial", folds=2)
    foreign = json.loads(json.dumps(manifest))
    foreign["folds"][0]["test"].append({"subject": 2, "trial": 11, "experiment_id": 12})
    overlap = json.loads(json.dumps(manifest))
    overlap["folds"][1]["train"].append(overlap["folds"][1]["test"][0])
    cases = {"foreign.json": (foreign, "fold 0 test names s02 trial 11, which the store"),
             "overlap.json": (overlap, "in both train and test; folds must be disjoint"),
             "broken.json": ("{not json", "not a split manifest (invalid JSON"),
             "shape.json": ({**manifest, "folds": [{"fold": 0, "train": []}]},
                            "malformed split manifest (fold 0: validation must be a list")}
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        result = _train("--store", tiny_planted_store, "--out", str(tmp_path / f"run-{name}"),
                        "--model", "eeg", "--epochs", "1", "--splits", str(path))
        assert result.exit_code == 2, (name, result.output)
        assert message in result.output and str(path) in result.output, (name, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert not (tmp_path / f"run-{name}" / "config.json").exists()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(manifest))
    result = _train("--store", tiny_planted_store, "--out", str(tmp_path / "run-loso"),
                    "--model", "eeg", "--epochs", "1", "--splits", str(good), "--protocol", "loso")
    assert result.exit_code == 2 and "the manifest's protocol is 'trial' but the run asks 'loso'" in result.output
    with pytest.raises(TrainError, match="cannot read the split manifest"):
        read_manifest(tmp_path / "missing.json")
