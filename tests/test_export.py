"""``milmer export``: the store's arrays as ``.npz`` files (numpy alone) or a Hugging Face
``datasets`` folder, subject by subject, with a data card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from flows.cli import app
from store_schema.contract.labels import LabelScheme, make_labels
from store_schema.contract.layout import Stage, stage_spec
from store_schema.engine.store import FeatureStore
from store_schema.views.export import public_url, provenance
from train.synthetic import write_planted_store


def _export(*args: str) -> object:
    return CliRunner().invoke(app, ["export", *args])


def test_npz_export_equals_the_stores_arrays_and_carries_a_data_card(
        tiny_planted_store: str, tmp_path: Path) -> None:
    out = tmp_path / "npz"
    result = _export(tiny_planted_store, "--out", str(out), "--format", "npz")
    assert result.exit_code == 0, result.output
    store = FeatureStore.open(tiny_planted_store, mode="r")
    for s in (1, 2):
        with np.load(out / f"s{s:02d}.npz") as exported:  # numpy alone, no pickle
            for stage in (Stage.segment, Stage.faces, Stage.tokens):
                for spec in stage_spec(stage).arrays:
                    got = exported[f"{stage.value}.{spec.name}"]
                    want = store.read(s, stage, spec.name)
                    assert got.dtype == want.dtype and np.array_equal(got, want), (s, spec.name)
            for scheme in LabelScheme:
                assert np.array_equal(exported[f"labels.{scheme.value}"], make_labels(
                    scheme, valence=store.read(s, Stage.segment, "valence"),
                    arousal=store.read(s, Stage.segment, "arousal")))
            assert int(exported["subject"]) == s and "ingest.eeg" not in exported.files
    card = json.loads((out / "card.json").read_text())
    assert card["subjects"] == [1, 2] and card["eeg"]["sampling_rate_hz"] == 128.0
    assert card["columns"]["tokens.tokens"] == {
        "shape": [10, 49, 768], "dtype": "float16", "per": "segment",
        "description": stage_spec(Stage.tokens).array("tokens").description}
    assert "µV" in card["columns"]["segment.eeg"]["description"]
    assert card["provenance"]["s02"]["tokens"]["fingerprint"] == store.record(2, Stage.tokens).fingerprint
    assert card["provenance"]["s01"]["tokens"]["extra"]["weights_fingerprint"] == "random:0"
    readme = (out / "README.md").read_text()
    assert "| `tokens.tokens` | segment | (10, 49, 768) | float16 |" in readme and "128 Hz" in readme
    # one subject, whole-trial stages too (npz only), into the same folder: an earlier export
    again = _export(tiny_planted_store, "--out", str(out), "--subjects", "2", "--stages", "ingest,segment")
    assert again.exit_code == 0, again.output
    with np.load(out / "s02.npz") as exported:
        assert np.array_equal(exported["ingest.eeg"], store.read(2, Stage.ingest, "eeg"))
        assert "tokens.tokens" not in exported.files
    assert json.loads((out / "card.json").read_text())["subjects"] == [2]
    assert not (out / "s01.npz").exists()  # the earlier export's subjects are cleared


def test_hf_export_loads_with_load_from_disk_and_holds_the_stores_values(
        tiny_planted_store: str, tmp_path: Path) -> None:
    from datasets import DatasetDict, load_from_disk

    out = tmp_path / "hf"
    result = _export(tiny_planted_store, "--out", str(out), "--format", "hf", "--stages", "segment,tokens")
    assert result.exit_code == 0, result.output
    loaded = load_from_disk(str(out))
    assert isinstance(loaded, DatasetDict) and list(loaded) == ["s01", "s02"]
    store = FeatureStore.open(tiny_planted_store, mode="r")
    split = loaded["s02"]
    assert split.num_rows == 16 and split.features["tokens.tokens"].dtype == "float16"
    rows = split.with_format("numpy")[:]
    assert np.array_equal(rows["segment.eeg"], store.read(2, Stage.segment, "eeg"))
    assert np.array_equal(rows["tokens.tokens"], store.read(2, Stage.tokens, "tokens").astype("f4"))
    assert split[3]["segment.valence"] == store.read(2, Stage.segment, "valence")[3]  # float64 kept
    assert np.array_equal(rows["segment.trial_index"], store.read(2, Stage.segment, "trial_index"))
    assert (rows["subject"] == 2).all() and "faces.crops" not in split.column_names
    assert json.loads((out / "card.json").read_text())["format"] == "hf"
    assert not (out / ".cache").exists()


def test_export_refuses_in_one_line_and_leaves_out_stale_subjects_without_leaking_secrets(
        tmp_path: Path) -> None:
    url = str(tmp_path / "store.zarr")
    write_planted_store(url, subjects=2, trials=2, segments_per_trial=1)
    trial_stages = _export(url, "--out", str(tmp_path / "x"), "--format", "hf", "--stages", "eeg")
    assert trial_stages.exit_code == 2 and "--format npz" in trial_stages.output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    busy = _export(url, "--out", str(tmp_path / "busy"))
    assert busy.exit_code == 2 and "not empty and not an earlier export" in busy.output
    assert len(busy.output.strip().splitlines()) == 1
    # s01's segment table rewritten after its faces were cut: its faces and tokens are stale
    store = FeatureStore.open(url)
    arrays, record = store.read_stage(1, Stage.segment), store.record(1, Stage.segment)
    arrays["start_s"] = arrays["start_s"] + 1.5
    store.write_stage(subject=1, stage=Stage.segment, arrays=arrays,
                      params={**record.params, "aws_secret_access_key": "SEKRIT-42"},
                      inputs=record.inputs, code_version=record.code_version,
                      libraries=record.libraries, wall_seconds=0.0,
                      extra={**record.extra, "api_token": "SEKRIT-43"})
    out = tmp_path / "out"
    result = _export(url, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "s01: faces stage" in result.output and not (out / "s01.npz").exists()
    assert (out / "s02.npz").exists()
    only_segment = _export(url, "--out", str(out), "--stages", "segment")  # s01's segment is fresh
    assert only_segment.exit_code == 0 and (out / "s01.npz").exists()
    for name in ("card.json", "README.md"):
        assert "SEKRIT" not in (out / name).read_text()
    assert "aws_secret_access_key" not in json.dumps(provenance(store.record(1, Stage.segment)))
    assert public_url("s3://AKIA:SEKRIT@bucket:9000/deap/store.zarr?token=x#y") == \
        "s3://bucket:9000/deap/store.zarr"
    assert public_url("/data/store.zarr") == "/data/store.zarr"
