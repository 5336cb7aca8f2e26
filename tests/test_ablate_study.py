"""`milmer ablate`: a named study on one store, one protocol, resumable, with its table and plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import NARROW_HEADS
from train import study as study_module
from train.config import TrainError
from train.data import StoreData
from train.probe import band_power_probe, modality_probes
from train.study import STUDIES, face_tuned, paired_differences, run_study, token_set_label
from train.synthetic import write_planted_store


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_paper_table4_study_runs_resumes_and_writes_its_table(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    url = str(tmp_path / "store.zarr")
    write_planted_store(url, subjects=2, trials=8, segments_per_trial=1)
    fields = {"store": url, "epochs": 1, "folds": 2, "lr": 1e-3, "model": NARROW_HEADS, "device": "cpu"}
    rows = run_study("paper-table4", tmp_path / "study", fields=fields)
    assert [r["preset"] for r in rows] == [r.preset for r in STUDIES["paper-table4"]]
    assert "queries-96" in {r["preset"] for r in rows} and "queries-196" in {r["preset"] for r in rows}
    for row in rows:
        assert len(row["accuracy"]) == 2 and row["protocol"] == "trial" and row["leaky"] is False
        assert row["accuracy_std"] >= 0 and 0 <= row["macro_f1_mean"] <= 1
    table = (tmp_path / "study" / "study.md").read_text()
    assert table.count("\n| ") == 2 + len(rows)  # header, rule, one line per row
    first = rows[0]
    assert (f"| {first['label']} | `balance-none` | random:0 | ✗ | trial | {first['accuracy_mean']:.3f} ± "
            f"{first['accuracy_std']:.3f} |") in table
    paired = first["vs_reference"]  # balance-none against queries-64, fold by fold
    reference = next(r for r in rows if r["preset"] == "queries-64")
    assert paired["folds"] == pytest.approx(np.subtract(first["accuracy"], reference["accuracy"]).tolist())
    assert f"| {paired['mean']:+.3f} ± {paired['std']:.3f} ({paired['won']}/{paired['lost']}/" in table
    assert reference["vs_reference"] is None
    assert (tmp_path / "study" / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the n_queries of each row reached its run
    config = json.loads((tmp_path / "study" / "rows" / "queries-196" / "config.json").read_text())
    assert config["model"]["n_queries"] == 196 and config["model"]["d_model"] == 64

    # resumable: finished rows are read back, not retrained
    def no_training(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a finished row was trained again")

    monkeypatch.setattr(study_module, "run_training", no_training)
    again = run_study("paper-table4", tmp_path / "study", fields=fields)
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]


def test_rows_stand_beside_the_reference_fold_by_fold() -> None:
    rows = [{"preset": "concat", "store": "s", "accuracy": [0.5, 0.3, 0.4]},
            {"preset": "fusion", "store": "s", "accuracy": [0.4, 0.3, 0.2]},
            {"preset": "concat", "store": "t", "accuracy": [0.9, 0.9, 0.9]}]  # no reference on t
    paired_differences(rows, "fusion")
    diff = rows[0]["vs_reference"]
    assert diff["folds"] == pytest.approx([0.1, 0.0, 0.2]) and diff["mean"] == pytest.approx(0.1)
    assert diff["std"] == pytest.approx(np.std([0.1, 0.0, 0.2]))
    assert (diff["won"], diff["lost"], diff["tied"]) == (2, 0, 1)
    assert rows[1]["vs_reference"] is None and rows[2]["vs_reference"] is None


def test_segment_protocol_rows_are_marked_leaky_and_unknown_studies_refused(tmp_path: Path) -> None:
    url = str(tmp_path / "store.zarr")
    write_planted_store(url, subjects=1, trials=4, segments_per_trial=2, tokens=False)
    fields = {"store": url, "epochs": 1, "folds": 2, "lr": 1e-3, "model": NARROW_HEADS, "protocol": "segment",
              "validation_fraction": 0.0}
    rows = run_study("tokenizers", tmp_path / "s", fields=fields)
    assert all(r["leaky"] for r in rows)
    table = (tmp_path / "s" / "study.md").read_text()
    assert "segment (leaky)" in table
    # the band-power probe's ceiling on the same windows and (segment) folds sits beside the rows
    data = StoreData.open(url, needs_tokens=False)
    probe = band_power_probe(data, data.splits("segment", folds=2, seed=0))
    assert "Probe ceilings on the same windows and folds" in table
    assert f"| EEG: log band power | {np.mean(probe['folds']):.3f} ± {np.std(probe['folds']):.3f} |" in table
    with pytest.raises(TrainError, match="unknown study 'nope'"):
        run_study("nope", tmp_path / "x", fields=fields)


def test_a_study_over_two_token_sets_runs_every_row_on_each_and_names_the_weights(
        tmp_path: Path) -> None:
    fine_tuned = "sha256:" + "cd" * 32
    stores = []
    for name, fp in (("random", "random:0"), ("ft", fine_tuned)):
        url = str(tmp_path / f"{name}.zarr")
        write_planted_store(url, subjects=1, trials=6, segments_per_trial=1, weights_fingerprint=fp)
        stores.append(url)
    fields = {"epochs": 1, "folds": 2, "lr": 1e-3, "model": NARROW_HEADS, "device": "cpu"}
    rows = run_study("paper-table6", tmp_path / "s", fields=fields, stores=stores)
    presets = [r.preset for r in STUDIES["paper-table6"]]
    assert [(r["store"], r["preset"]) for r in rows] == [(u, p) for u in stores for p in presets]
    assert {r["tokens"] for r in rows[:len(presets)]} == {"random:0"}
    assert {r["tokens"] for r in rows[len(presets):]} == {fine_tuned[:19] + "..."}
    assert (tmp_path / "s" / "rows" / f"2-{presets[0]}" / "metrics.json").is_file()
    table = (tmp_path / "s" / "study.md").read_text()
    assert table.count("| random:0 |") == len(presets) and table.count(f"| {fine_tuned[:19]}... |") == len(presets)


def test_paper_table5_states_the_eeg_face_and_fused_probe_ceilings(tmp_path: Path) -> None:
    url = str(tmp_path / "store.zarr")
    write_planted_store(url, subjects=2, trials=8, segments_per_trial=2)
    fields = {"store": url, "epochs": 1, "folds": 2, "lr": 1e-3, "model": NARROW_HEADS, "device": "cpu"}
    rows = run_study("paper-table5", tmp_path / "s", fields=fields)
    assert [r["preset"] for r in rows] == [r.preset for r in STUDIES["paper-table5"]]
    probes = json.loads((tmp_path / "s" / "study.json").read_text())["probes"]
    assert len(probes) == 1 and probes[0]["store"] == url
    data = StoreData.open(url)
    want = modality_probes(data, data.splits("trial", folds=2, seed=0))
    for key in ("eeg", "face", "fusion"):
        assert probes[0][key]["folds"] == want[key]["folds"]
    table = (tmp_path / "s" / "study.md").read_text()
    assert f"| fusion of the two probes | {want['fusion']['mean']:.3f} ± {want['fusion']['std']:.3f} |" in table


def test_milmer_ablate_runs_a_study_from_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    url = str(tmp_path / "store.zarr")
    write_planted_store(url, subjects=1, trials=4, segments_per_trial=2, tokens=False)
    config = tmp_path / "small.json"
    config.write_text(json.dumps({"model": NARROW_HEADS, "lr": 1e-3}))
    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["ablate", "tokenizers", "--store", url, "--out", str(out),
                                      "--config", str(config), "--epochs", "1", "--folds", "2",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "differential entropy, 5 bands" in result.output and "(chance " in result.output
    assert (out / "study.md").is_file() and (out / "study.png").is_file()
    # every row is a run with its split manifest, and the rows share their folds
    manifests = [json.loads((out / "rows" / row.preset / "splits.json").read_text())["folds"]
                 for row in STUDIES["tokenizers"]]
    assert all(m == manifests[0] for m in manifests) and len(manifests[0]) == 2
    bad = CliRunner().invoke(app, ["ablate", "nope", "--store", url, "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown study 'nope'" in bad.output
    broken = tmp_path / "broken.json"
    broken.write_text("{\"format\": \"milmer-splits/1\"}")
    bad = CliRunner().invoke(app, ["ablate", "tokenizers", "--store", url, "--out",
                                   str(tmp_path / "y"), "--splits", str(broken)])
    assert bad.exit_code == 2 and f"{broken}: malformed split manifest" in bad.output


def test_table6_over_token_sets_labels_each_by_its_weights_and_pairs_the_ft_axis_by_fold(
        tmp_path: Path) -> None:
    """The tokens record says where the weights came from: the study names the starting point
    (random / a finetune and its base), marks Table 6's FT axis, and pairs each row with the same
    row on the first store fold by fold."""
    tuned = "sha256:" + "ab" * 32
    sets = (("random", "random:0", {"spec": "random", "origin": "random", "face_tuned": False}),
            ("tuned", tuned, {"spec": "/w/ft", "origin": "finetune", "face_tuned": True,
                              "model_card": {"base_weights": {"spec": "imagenet"}}}))
    stores = []
    for name, fp, provenance in sets:
        url = str(tmp_path / f"{name}.zarr")
        write_planted_store(url, subjects=1, trials=4, segments_per_trial=1, weights_fingerprint=fp,
                            weights_provenance={**provenance, "fingerprint": fp})
        stores.append(url)
    fields = {"epochs": 1, "folds": 2, "lr": 1e-3, "model": NARROW_HEADS, "device": "cpu"}
    rows = run_study("paper-table6", tmp_path / "s", fields=fields, stores=stores)
    n = len(STUDIES["paper-table6"])
    assert {r["tokens"] for r in rows[:n]} == {"random (random:0)"}
    assert {r["tokens"] for r in rows[n:]} == {f"milmer finetune of imagenet ({tuned[:19]}...)"}
    assert [r["ft"] for r in rows] == [False] * n + [True] * n
    assert all(r["vs_first_store"] is None for r in rows[:n])
    for row, first in zip(rows[n:], rows[:n]):
        assert row["vs_first_store"]["folds"] == pytest.approx(
            np.subtract(row["accuracy"], first["accuracy"]).tolist(), abs=1e-6)
    table = (tmp_path / "s" / "study.md").read_text()
    assert "| token weights | FT |" in table and "the same row on the first store, paired by fold" in table
    assert table.count(f"| milmer finetune of imagenet ({tuned[:19]}...) | ✓ |") == n
    assert table.count("| random (random:0) | ✗ |") == n
    header, rule = table.splitlines()[4:6]
    assert header.count("|") == rule.count("|")


@pytest.mark.parametrize(("metrics", "label", "ft"), [
    ({"weights_fingerprint": "sha256:" + "01" * 32,
      "token_weights": {"origin": "imagenet", "face_tuned": False}}, "ImageNet (sha256:010101010101...)", False),
    ({"weights_fingerprint": "sha256:" + "02" * 32,
      "token_weights": {"origin": "face-emotion", "face_tuned": True}}, "face-emotion (sha256:020202020202...)", True),
    ({"weights_fingerprint": "sha256:" + "03" * 32,
      "token_weights": {"origin": "checkpoint", "face_tuned": None}}, "checkpoint (sha256:030303030303...)", None),
    ({"weights_fingerprint": "random:4", "random_weights": True}, "random:4", False),
    ({"weights_fingerprint": None}, "no tokens (EEG only)", None),
])
def test_a_row_names_its_token_weights_and_their_ft_mark(metrics: dict, label: str, ft: bool | None) -> None:
    assert (token_set_label(metrics), face_tuned(metrics)) == (label, ft)
