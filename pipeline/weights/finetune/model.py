"""The model, optimiser, schedule, augmentation and evaluation of ``milmer finetune``.

The recipe (:data:`RECIPE`, written into the model card):

* Swin-tiny (timm ``swin_tiny_patch4_window7_224``) from ``--weights`` + a fresh Linear head;
* AdamW (betas 0.9/0.999, weight decay 0.05, none on norms, biases and position tables);
* layer-wise lr decay (default 0.75; ``--layer-decay``) per depth from the head down (timm's
  ``param_groups_layer_decay``); from random weights 1.0 (no decay) lets the lower layers learn;
* per-step schedule: linear warm-up over the first 5 % of steps (at least 1), then cosine to 0;
* cross-entropy with label smoothing 0.1;
* augmentation on the batch tensors: horizontal flip (p 0.5), rotation uniform in ±10° (bilinear,
  black corners like the padding), random erasing (p 0.25, 2–20 % of the area, aspect 0.3–3.3,
  filled with normal noise after normalisation);
* normalisation: the base weights' own (ImageNet for random weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.weights.swin_source import MODEL_NAME, Normalisation

RECIPE: dict[str, Any] = {
    "optimizer": "AdamW", "betas": [0.9, 0.999], "weight_decay": 0.05,
    "layer_decay": 0.75, "layer_decay_impl": "timm.optim.param_groups_layer_decay",
    "schedule": "per-step linear warm-up over the first 5% of steps (>= 1), then cosine to 0",
    "warmup_fraction": 0.05, "label_smoothing": 0.1,
    "augmentation": {"hflip_p": 0.5, "rotation_deg": 10.0, "random_erasing_p": 0.25,
                     "random_erasing_area": [0.02, 0.2], "random_erasing_aspect": [0.3, 3.3]},
    "selection": "the epoch with the best validation accuracy (earlier on a tie); test evaluated once",
    "input": "224x224 RGB through the face stage's center_pad (grey -> RGB)",
}


def build_model(backbone: torch.nn.Module, num_classes: int, *, seed: int) -> torch.nn.Module:
    """``backbone`` (a headless timm Swin) with a fresh Linear head of ``num_classes``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone.reset_classifier(num_classes)
    return backbone


def tiny_backbone(model_kwargs: dict[str, Any], *, seed: int) -> torch.nn.Module:
    """A small Swin of ``model_kwargs`` (tests), randomly initialised under ``seed``."""
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return timm.create_model(MODEL_NAME, pretrained=False, num_classes=0, **model_kwargs)


def param_groups(model: torch.nn.Module, lr: float, layer_decay: float) -> list[dict[str, Any]]:
    """AdamW groups with layer-wise lr decay; each group's ``lr`` is already scaled."""
    no_decay = set(getattr(model, "no_weight_decay", lambda: set())())
    from timm.optim import param_groups_layer_decay  # timm >= 1.0 (pyproject) has it

    groups = param_groups_layer_decay(model, weight_decay=RECIPE["weight_decay"],
                                      no_weight_decay_list=list(no_decay),
                                      layer_decay=layer_decay)
    for group in groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return groups


def make_optimizer(model: torch.nn.Module, lr: float, total_steps: int, *,
                   layer_decay: float = RECIPE["layer_decay"]
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    optimizer = torch.optim.AdamW(param_groups(model, lr, layer_decay), lr=lr,
                                  betas=tuple(RECIPE["betas"]))
    warmup = max(1, round(RECIPE["warmup_fraction"] * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---- tensors -------------------------------------------------------------------------------------

def to_tensor(images: Sequence[np.ndarray], norm: Normalisation, device: torch.device) -> torch.Tensor:
    """(B, 224, 224, 3) uint8 RGB → normalised (B, 3, 224, 224) float32 on ``device``."""
    batch = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float()
    mean = torch.tensor(norm.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(norm.std, device=device).view(1, 3, 1, 1)
    return (batch * norm.scale - mean) / std


def augment(x: torch.Tensor, generator: torch.Generator, norm: Normalisation) -> torch.Tensor:
    """Flip, rotate and erase a normalised batch, each image its own draw (``generator`` on CPU)."""
    b = x.shape[0]
    aug = RECIPE["augmentation"]
    u = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    flip = (u(b) < aug["hflip_p"]).to(x.device)
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    angle = (u(b) * 2 - 1) * math.radians(aug["rotation_deg"])
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(b)], 1),
                         torch.stack([sin, cos, torch.zeros(b)], 1)], 1).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # rotate in pixel space so the corners fill with black, as the padding does
    mean = torch.tensor(norm.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(norm.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    x = (F.grid_sample(x * std + mean, grid, mode="bilinear", padding_mode="zeros",
                       align_corners=False) - mean) / std
    h, w = x.shape[-2:]
    lo, hi = aug["random_erasing_area"]
    a_lo, a_hi = aug["random_erasing_aspect"]
    for i in range(b):
        if float(u(1)) >= aug["random_erasing_p"]:
            continue
        area = h * w * (lo + (hi - lo) * float(u(1)))
        aspect = math.exp(math.log(a_lo) + (math.log(a_hi) - math.log(a_lo)) * float(u(1)))
        eh = min(h, max(1, int(round(math.sqrt(area * aspect)))))
        ew = min(w, max(1, int(round(math.sqrt(area / aspect)))))
        top = int(u(1) * (h - eh + 1))
        left = int(u(1) * (w - ew + 1))
        noise = torch.randn(3, eh, ew, generator=generator).to(x.device, x.dtype)
        x[i, :, top:top + eh, left:left + ew] = noise
    return x


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def choose_precision(device: torch.device, native_bf16_cpu: bool) -> str:
    """bf16 on a CUDA device that has it (fp16 otherwise) and on a CPU that computes it natively;
    float32 elsewhere."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if native_bf16_cpu else "fp32"


@torch.no_grad()
def predict(model: torch.nn.Module, refs: Sequence[Any], load: Callable[[Any], np.ndarray],
            norm: Normalisation, device: torch.device, precision: str, batch_size: int) -> np.ndarray:
    """Class predictions of the images ``refs`` (each read by ``load`` as 224x224 RGB uint8)."""
    model.eval()
    out: list[np.ndarray] = []
    for start in range(0, len(refs), batch_size):
        x = to_tensor([load(r) for r in refs[start:start + batch_size]], norm, device)
        with autocast(device, precision):
            logits = model(x)
        out.append(logits.float().argmax(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


# ---- metrics -------------------------------------------------------------------------------------

def metrics(labels: Sequence[int], predictions: Sequence[int], classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1 (over classes with images or predictions), per-class recall, confusion."""
    k = len(classes)
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(predictions, dtype=np.int64)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, p), 1)
    true = confusion.sum(1)
    predicted = confusion.sum(0)
    hits = np.diag(confusion)
    recall = {c: (float(hits[i] / true[i]) if true[i] else None) for i, c in enumerate(classes)}
    f1s = [2 * hits[i] / (true[i] + predicted[i]) for i in range(k) if true[i] + predicted[i]]
    return {"n": int(len(y)), "accuracy": float((y == p).mean()) if len(y) else None,
            "macro_f1": float(np.mean(f1s)) if f1s else None, "per_class_recall": recall,
            "confusion": confusion.tolist()}
