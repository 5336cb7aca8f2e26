"""`milmer finetune`: the three dataset formats, the weights folder it writes (that `--weights DIR`
accepts), the model card against a re-evaluation, bad input, resuming, and the CLI.

Most runs use a tiny Swin configuration (same code, a few thousand parameters); one runs the real
Swin-tiny for one step and hands its folder to the tokens stage's weight checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app
from pipeline.errors import FinetuneInputError, ParameterError
from pipeline.weights.finetune.data import read_dataset
from pipeline.weights.finetune.run import evaluate_saved, finetune

TINY = {"embed_dim": 24, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}
FAST = {"progress": False, "model_kwargs": TINY, "batch_size": 8, "device": "cpu"}
OUTPUT_FILES = {"model.safetensors", "config.json", "model_card.json", "curves.png", "confusion.png",
                "checkpoint.pt"}


def face(bright: bool, seed: int, size: int = 48) -> np.ndarray:
    """A grey face-sized image: a bright disc on dark, or a dark disc on bright."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size), 60 if bright else 190, np.uint8)
    cv2.circle(image, (size // 2, size // 2), size // 3, 220 if bright else 30, -1)
    return np.clip(image + rng.integers(-15, 16, image.shape), 0, 255).astype(np.uint8)


def image_folder(root: Path, per_split: dict[str, int], classes=("bright", "dark"), size=48) -> Path:
    seed = 0
    for split, n in per_split.items():
        for name in classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed += 1
                grey = face(name == "bright", seed, size)
                image = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR) if i % 2 else grey  # colour and grey files
                cv2.imwrite(str(root / split / name / f"{i:03d}.{'png' if i % 3 else 'jpg'}"), image)
    return root


def fer_csv(path: Path) -> Path:
    rows = ["emotion,pixels,Usage"]
    for usage, n in (("Training", 6), ("PublicTest", 2), ("PrivateTest", 2)):
        for i in range(n):
            for label in (0, 3):  # angry, happy
                pixels = face(label == 3, len(rows), 48).ravel()
                rows.append(f"{label},{' '.join(map(str, pixels))},{usage}")
    rows.append("3,1 2 3,Training")  # a short row: skipped
    path.write_text("\n".join(rows) + "\n")
    return path


def rafdb(root: Path) -> Path:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "Image" / "aligned").mkdir(parents=True)
    lines = []
    for split, n in (("train", 8), ("test", 2)):
        for i in range(n):
            label = 4 if i % 2 else 6  # happiness, anger
            name = f"{split}_{i + 1:05d}"
            lines.append(f"{name}.jpg {label}")
            rgb = cv2.cvtColor(face(label == 4, len(lines), 64), cv2.COLOR_GRAY2BGR)
            cv2.imwrite(str(root / "Image" / "aligned" / f"{name}_aligned.jpg"), rgb)
    lines.append("train_09999.jpg 4")  # listed, no image: skipped
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


def assert_weights_folder(out: Path, card: dict, classes: list[str]) -> None:
    assert OUTPUT_FILES <= {p.name for p in out.iterdir()}
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "swin_tiny_patch4_window7_224"
    assert config["num_classes"] == len(classes) and config["label_names"] == classes
    assert len(config["pretrained_cfg"]["mean"]) == 3 and len(config["pretrained_cfg"]["std"]) == 3
    for field in ("base_weights", "data", "classes", "split_counts", "images_skipped", "recipe",
                  "libraries", "selected_epoch", "validation", "test", "weights_sha256"):
        assert field in card, field
    assert card["classes"] == classes
    assert card["base_weights"]["kind"] == "random" and card["base_weights"]["fingerprint"] == "random:0"
    assert len(card["data"]["sha256"]) == 64
    assert card["recipe"]["optimizer"] == "AdamW" and card["recipe"]["label_smoothing"] == 0.1
    assert {"torch", "timm"} <= set(card["libraries"])
    for split in ("validation", "test"):
        assert set(card[split]) >= {"accuracy", "macro_f1", "per_class_recall"}
        assert list(card[split]["per_class_recall"]) == classes
    import hashlib

    assert card["weights_sha256"] == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads((out / "model_card.json").read_text())["test"] == card["test"]


def test_an_image_folder_gives_a_weights_folder_whose_card_matches_a_reevaluation(tmp_path: Path) -> None:
    data = image_folder(tmp_path / "faces", {"train": 6, "test": 2})
    (data / "train" / "dark" / "broken.png").write_bytes(b"not a png")
    logged: list[str] = []
    card = finetune(data, tmp_path / "out", epochs=2, val_fraction=0.25, layer_decay=1.0,
                    log=logged.append, **FAST)
    out = tmp_path / "out"
    assert card["recipe"]["layer_decay"] == 1.0 and card["settings"]["layer_decay"] == 1.0
    assert_weights_folder(out, card, ["bright", "dark"])
    assert card["data"]["format"] == "image_folder" and card["data"]["given_splits"] == ["train", "test"]
    assert card["split_counts"] == {"train": {"bright": 4, "dark": 4}, "val": {"bright": 2, "dark": 2},
                                    "test": {"bright": 2, "dark": 2}}
    assert card["images_skipped"] == 1 and card["data"]["skipped"][0]["reason"] == "unreadable image"
    assert sum("broken.png: unreadable image" in line for line in logged) == 1
    assert [h["epoch"] for h in card["history"]] == [1, 2] and card["selected_epoch"] in (1, 2)
    # throughput for gpu_check.sh; torch's peak memory only where there is a GPU to measure
    assert all(h["train_images_per_second"] > 0 and h["peak_gpu_memory_mib"] is None for h in card["history"])
    assert sum("training images/s" in line for line in logged) == 2
    again = evaluate_saved(out, data, log=lambda _: None)
    assert again["accuracy"] == card["test"]["accuracy"] and again["confusion"] == card["test"]["confusion"]
    from safetensors.torch import load_file

    keys = set(load_file(str(out / "model.safetensors")))
    assert {"patch_embed.proj.weight", "norm.weight", "head.fc.weight"} <= keys


def test_a_fer2013_csv_uses_its_usage_splits_and_skips_a_bad_row(tmp_path: Path) -> None:
    data = fer_csv(tmp_path / "fer2013.csv")
    card = finetune(data, tmp_path / "out", epochs=1, log=lambda _: None, **FAST)
    assert_weights_folder(tmp_path / "out", card, ["angry", "happy"])
    assert card["data"]["format"] == "fer2013_csv" and card["data"]["given_splits"] == ["train", "val", "test"]
    assert card["split_counts"]["train"] == {"angry": 6, "happy": 6}
    assert card["split_counts"]["test"] == {"angry": 2, "happy": 2}
    assert card["images_skipped"] == 1 and "3 pixels" in card["data"]["skipped"][0]["reason"]
    assert card["data"]["skipped"][0]["file"].endswith("fer2013.csv:22")
    assert evaluate_saved(tmp_path / "out", data, log=lambda _: None)["accuracy"] == card["test"]["accuracy"]


def test_rafdb_reads_its_label_file_and_carves_validation_from_train(tmp_path: Path) -> None:
    data = rafdb(tmp_path / "RAF-DB")
    card = finetune(data, tmp_path / "out", epochs=1, val_fraction=0.25, log=lambda _: None, **FAST)
    assert_weights_folder(tmp_path / "out", card, ["happiness", "anger"])
    assert card["data"]["format"] == "rafdb" and card["data"]["given_splits"] == ["train", "test"]
    assert card["split_counts"] == {"train": {"happiness": 3, "anger": 3},
                                    "val": {"happiness": 1, "anger": 1},
                                    "test": {"happiness": 1, "anger": 1}}
    assert card["images_skipped"] == 1 and card["data"]["skipped"][0]["reason"] == "missing image"
    assert evaluate_saved(tmp_path / "out", data, log=lambda _: None)["accuracy"] == card["test"]["accuracy"]


def test_unusable_datasets_are_refused_naming_what_is_wrong(tmp_path: Path) -> None:
    empty_class = image_folder(tmp_path / "a", {"train": 2})
    (empty_class / "train" / "neutral").mkdir()
    with pytest.raises(FinetuneInputError, match=r"train/neutral: class folder holds no image"):
        read_dataset(empty_class, log=lambda _: None)
    one_class = image_folder(tmp_path / "b", {"train": 4}, classes=("happy",))
    with pytest.raises(FinetuneInputError, match=r"1 class\(es\) with images \(happy\).*at least 2"):
        read_dataset(one_class, log=lambda _: None)
    extra = image_folder(tmp_path / "c", {"train": 2, "test": 1})
    (extra / "test" / "fear").mkdir()
    cv2.imwrite(str(extra / "test" / "fear" / "0.png"), face(True, 0))
    with pytest.raises(FinetuneInputError, match=r"test/fear: class folder not in train/"):
        read_dataset(extra, log=lambda _: None)
    with pytest.raises(FinetuneInputError, match=r"bright: a folder with no sub-folder"):
        read_dataset(extra / "train" / "bright", log=lambda _: None)
    with pytest.raises(FinetuneInputError, match=str(tmp_path / "nothing.txt")):
        read_dataset(tmp_path / "nothing.txt", log=lambda _: None)
    classes_only = image_folder(tmp_path / "d", {"all": 4})
    counts = read_dataset(classes_only / "all", val_fraction=0.25, log=lambda _: None).counts()
    assert counts == {"train": {"bright": 2, "dark": 2}, "val": {"bright": 1, "dark": 1},
                      "test": {"bright": 1, "dark": 1}}


def test_resume_continues_after_the_last_epoch_and_refuses_other_settings(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = image_folder(tmp_path / "faces", {"train": 4, "val": 1, "test": 1})
    out = tmp_path / "out"
    seen: list[int] = []

    def stop_after_first(row: dict) -> None:
        seen.append(row["epoch"])
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(data, out, epochs=2, log=lambda _: None, on_epoch_end=stop_after_first, **FAST)
    assert (out / "checkpoint.pt").is_file() and not (out / "model_card.json").exists()
    with pytest.raises(FinetuneInputError, match="checkpoint.pt: cannot resume .*lr 0.0002 -> 0.001"):
        finetune(data, out, epochs=2, lr=1e-3, resume=True, log=lambda _: None, **FAST)
    with pytest.raises(FinetuneInputError, match="already holds a fine-tuning run"):
        finetune(data, out, epochs=2, log=lambda _: None, **FAST)
    logged: list[str] = []
    capfd.readouterr()
    # settings not given are the run's own (epochs 2, batch size 8); progress left to the
    # default without a terminal (a log file, CI): no bar, one line per epoch
    card = finetune(data, out, resume=True, log=logged.append, model_kwargs=TINY,
                    on_epoch_end=lambda row: seen.append(row["epoch"]))
    assert seen == [1, 2]  # epoch 1 was not run again
    assert [h["epoch"] for h in card["history"]] == [1, 2] and card["recipe"]["batch_size"] == 8
    assert any("after epoch 1 of 2" in line for line in logged)
    assert [line.split(":")[0] for line in logged if line.startswith("epoch")] == ["epoch 2/2"]
    written = capfd.readouterr()
    assert "\r" not in written.err + written.out and "batches" not in written.err


def test_real_swin_tiny_one_step_gives_a_folder_the_tokens_stage_accepts(tmp_path: Path) -> None:
    import torch

    from pipeline.weights.swin import check_weights, load_backbone
    from pipeline.weights.swin_source import resolve_weights

    data = image_folder(tmp_path / "faces", {"train": 3, "val": 1, "test": 1})
    out = tmp_path / "out"
    card = finetune(data, out, epochs=1, batch_size=8, device="cpu", progress=False, log=lambda _: None)
    assert card["model_args"] == {} and card["history"][0]["epoch"] == 1
    source = check_weights(str(out))
    assert source.kind == "timm_folder"
    backbone, norm = load_backbone(resolve_weights(str(out)))
    assert norm.mean == (0.485, 0.456, 0.406)
    from safetensors.torch import load_file

    saved = load_file(str(out / "model.safetensors"))
    assert torch.equal(backbone.state_dict()["layers.2.blocks.5.mlp.fc2.weight"],
                       saved["layers.2.blocks.5.mlp.fc2.weight"])
    with torch.no_grad():
        tokens = backbone.forward_features(torch.zeros(1, 3, 224, 224))
    assert tuple(tokens.shape) == (1, 7, 7, 768)


def test_the_cli_helps_and_refuses_bad_input_with_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    helped = runner.invoke(app, ["finetune", "--help"], env={"COLUMNS": "200"})
    assert helped.exit_code == 0 and "--val-fraction" in helped.output and "--resume" in helped.output
    missing = tmp_path / "no-such-data"
    result = runner.invoke(app, ["finetune", "--data", str(missing), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert str(missing) in " ".join(result.output.split()) and "no such file or folder" in result.output
    empty = image_folder(tmp_path / "faces", {"train": 2})
    (empty / "train" / "surprise").mkdir()
    result = runner.invoke(app, ["finetune", "--data", str(empty), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "class folder holds no image" in result.output
    no_weights = tmp_path / "no-weights.safetensors"
    result = runner.invoke(app, ["finetune", "--data", str(tmp_path / "faces"), "--out", str(tmp_path / "o"),
                                 "--weights", str(no_weights)])
    assert result.exit_code == 2 and str(no_weights) in " ".join(result.output.split())
    assert not (tmp_path / "o").exists()  # refused before any work
    with pytest.raises(ParameterError):
        finetune(empty, tmp_path / "o2", epochs=0, log=lambda _: None, **FAST)
    with pytest.raises(ParameterError, match="layer decay"):
        finetune(empty, tmp_path / "o2", layer_decay=1.5, log=lambda _: None, **FAST)
