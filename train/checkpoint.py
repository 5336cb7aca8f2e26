"""Checkpoints as safetensors: model weights, AdamW state and the torch RNG, written atomically.

Layout of one checkpoint file: ``model.<name>`` (the state dict), ``optim.<param index>.<name>`` (AdamW's
``step``, ``exp_avg``, ``exp_avg_sq``), ``rng.torch`` (and ``rng.cuda``); the metadata holds
``epoch`` (epochs completed), ``fold``, ``param_groups`` (JSON) and whatever the caller adds.
The selected epoch's weights are kept apart (:func:`save_weights`), for the one test evaluation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from train.config import TrainError


def save_checkpoint(path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
                    meta: dict[str, Any] | None = None) -> None:
    tensors: dict[str, torch.Tensor] = {
        f"model.{k}": v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    state = optimizer.state_dict()
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value.detach().to("cpu").contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    metadata = {"epoch": str(epoch), "param_groups": json.dumps(state["param_groups"]),
                **{k: v if isinstance(v, str) else json.dumps(v) for k, v in (meta or {}).items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)  # a crash never leaves a half-written checkpoint under the real name


def checkpoint_epoch(path: Path) -> int | None:
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        return int(f.metadata()["epoch"])


def load_checkpoint(path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    device: torch.device) -> dict[str, str]:
    """Restore model, optimizer and RNG in place; return the metadata."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise TrainError(f"{path}: unreadable checkpoint ({err}); delete it to restart that fold") from None
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise TrainError(f"{path}: does not fit this model ({str(err).splitlines()[0]}); the run's "
                         "model settings changed: use a new --out") from None
    if optimizer is not None:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state,
                                   "param_groups": json.loads(metadata["param_groups"])})
        for values in optimizer.state.values():  # exp_avg & co. on the parameters' device
            for name, value in values.items():
                if isinstance(value, torch.Tensor) and name != "step":
                    values[name] = value.to(device)
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return metadata


def save_weights(path: Path, *, model: nn.Module, epoch: int) -> None:
    """The model's weights alone (the selected epoch's), written atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"epoch": str(epoch)})
    os.replace(tmp, path)


def load_weights(path: Path, *, model: nn.Module) -> int:
    """Load weights written by :func:`save_weights` into ``model``; return their epoch."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            epoch = int(f.metadata()["epoch"])
            weights = {k: f.get_tensor(k) for k in f.keys()}
        model.load_state_dict(weights, strict=True)
    except Exception as err:  # noqa: BLE001 - unreadable or not this model: the same advice
        raise TrainError(f"{path}: unusable selected-epoch weights ({str(err).splitlines()[0]}); "
                         "delete the fold's checkpoints to restart it") from None
    return epoch
