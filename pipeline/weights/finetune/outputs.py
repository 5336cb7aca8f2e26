"""What ``milmer finetune`` writes, and reading it back.

``model.safetensors`` holds the timm keys of the whole model (the classifier under ``head.*``,
which the tokens stage's loader drops); ``config.json`` is timm's hub format (``architecture``,
``num_classes``, ``label_names``, ``pretrained_cfg`` with the normalisation; ``model_args`` only
for a non-standard test configuration), so ``--weights OUT`` reads the folder as a timm folder.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import FinetuneInputError
from pipeline.weights.finetune.data import sha256_hex
from pipeline.weights.swin_source import MODEL_NAME, Normalisation
from store_schema.contract.fingerprint import library_versions as recorded_versions

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "model_card.json"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion.png"
CHECKPOINT_FILE = "checkpoint.pt"


def write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)




def save_model(out: Path, state: dict[str, torch.Tensor], *, classes: Sequence[str],
               norm: Normalisation, model_kwargs: dict[str, Any] | None) -> str:
    """Write ``model.safetensors`` and ``config.json``; return the weights' sha256."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() if v.is_floating_point()
               else v.detach().cpu().contiguous()
               for k, v in state.items() if not k.endswith(("relative_position_index", "attn_mask"))}
    tmp = out / (MODEL_FILE + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.chmod(0o644)  # safetensors writes 0600; the folder is meant to be shared as weights
    os.replace(tmp, out / MODEL_FILE)
    config: dict[str, Any] = {
        "architecture": MODEL_NAME, "num_classes": len(classes), "num_features": 768,
        "label_names": list(classes),
        "pretrained_cfg": {"input_size": [3, 224, 224], "interpolation": "bicubic", "crop_pct": 1.0,
                           "mean": list(norm.mean), "std": list(norm.std),
                           "num_classes": len(classes), "label_names": list(classes),
                           "first_conv": "patch_embed.proj", "classifier": "head.fc"},
    }
    if model_kwargs:
        config["model_args"] = dict(model_kwargs)
        config["num_features"] = int(model_kwargs.get("embed_dim", 96)) * 8
    write_json(out / CONFIG_FILE, config)
    return sha256_hex(out / MODEL_FILE)


def load_saved(out: Path) -> tuple[torch.nn.Module, Normalisation, list[str]]:
    """The classifier ``finetune`` saved in ``out`` (CPU, eval mode), its normalisation and classes."""
    import timm
    from safetensors.torch import load_file

    config_path = out / CONFIG_FILE
    if not config_path.is_file() or not (out / MODEL_FILE).is_file():
        raise FinetuneInputError(out, f"no {CONFIG_FILE} + {MODEL_FILE}: not a finetune output folder")
    config = json.loads(config_path.read_text())
    model = timm.create_model(config["architecture"], pretrained=False,
                              num_classes=int(config["num_classes"]), **config.get("model_args", {}))
    result = model.load_state_dict(load_file(str(out / MODEL_FILE)), strict=False)
    missing = [k for k in result.missing_keys if not k.endswith(("relative_position_index", "attn_mask"))]
    if missing or result.unexpected_keys:
        raise FinetuneInputError(out / MODEL_FILE, f"does not match {config['architecture']}: "
                                 f"missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")
    cfg = config["pretrained_cfg"]
    norm = Normalisation(scale=1 / 255, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),  # type: ignore[arg-type]
                         origin="config.json pretrained_cfg")
    return model.eval(), norm, list(config["label_names"])


def library_versions() -> dict[str, str]:
    """Python's version and the recorded libraries' (as the stages record theirs)."""
    return {"python": platform.python_version(),
            **recorded_versions(("torch", "timm", "safetensors", "numpy", "opencv-contrib-python"))}


def plot_curves(path: Path, history: Sequence[dict[str, Any]], selected_epoch: int | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, left = plt.subplots(figsize=(6, 3.5))
    left.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:blue", label="train loss")
    left.set_xlabel("epoch")
    left.set_ylabel("train loss", color="tab:blue")
    right = left.twinx()
    right.plot(epochs, [h["val_accuracy"] for h in history], "s-", color="tab:orange",
               label="validation accuracy")
    right.set_ylabel("validation accuracy", color="tab:orange")
    right.set_ylim(0, 1.05)
    left.xaxis.get_major_locator().set_params(integer=True)
    if selected_epoch is not None:
        left.axvline(selected_epoch, color="grey", linestyle=":", label="selected epoch")
    left.set_title("fine-tuning: train loss and validation accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(path: Path, confusion: Sequence[Sequence[int]], classes: Sequence[str],
                   title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion)
    size = max(3.5, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_title(title, fontsize=9, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
