"""Normalising the cached face tokens with statistics of the training fold (``face_norm``).

``none`` (the paper's, which fine-tunes Swin): the tokens as cached. ``standardize``: minus the
mean and over the std of the fit rows' frames, per token position and channel. ``whiten``: minus
the per-position mean, then times the inverse square root of the channels' covariance (ZCA), its
eigenvalues raised by ``WHITEN_RIDGE`` x their mean so that directions the fold barely spans stay
finite. Frozen random-weight tokens have an effective rank of ~5 of 768: unwhitened, the heads
cannot fit the expression. The statistics are buffers, so they travel in checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

FACE_NORMS = ("none", "standardize", "whiten")

WHITEN_RIDGE = 0.01
"""``whiten``: added to the covariance's eigenvalues, times their mean."""

LEGACY_BUFFERS = {"face_mean": "face_norm.mean", "face_std": "face_norm.std",
                  "face_whiten": "face_norm.whiten"}
"""Checkpoint keys of these statistics from before they were a component (buffers of the model
itself) -> their keys now, a model holding its :class:`FaceNorm` as ``face_norm``."""


class FaceNorm(nn.Module):
    """Cached tokens (B, F, T, D) -> the same tokens normalised, in float32 even under autocast
    (the inverse square root multiplies the low-variance directions that carry the cue by up to
    10), then in ``dtype``."""

    def __init__(self, *, mode: str = "none", n_face_tokens: int = 49, token_dim: int = 768) -> None:
        super().__init__()
        if mode not in FACE_NORMS:
            raise ValueError(f"unknown face_norm {mode!r}: {', '.join(FACE_NORMS)}")
        self.mode = mode
        if mode != "none":
            self.register_buffer("mean", torch.zeros(n_face_tokens, token_dim))
        if mode == "standardize":
            self.register_buffer("std", torch.ones(n_face_tokens, token_dim))
        if mode == "whiten":
            self.register_buffer("whiten", torch.eye(token_dim))

    @property
    def needs_statistics(self) -> bool:
        return self.mode != "none"

    @property
    def needs_covariance(self) -> bool:
        return self.mode == "whiten"

    @torch.no_grad()
    def fit_statistics(self, mean: Tensor, std: Tensor, cov: Tensor | None) -> None:
        """The fit rows' token statistics (:meth:`train.data.StoreData.token_statistics`): per
        position mean (49, 768) and std, and the covariance (768, 768) of the centred tokens
        (``whiten`` only); ``whiten`` keeps its ridged inverse square root."""
        if self.mode == "none":
            return
        self.mean.copy_(mean)
        if self.mode == "standardize":
            self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        else:
            assert cov is not None, "face_norm=whiten needs the covariance"
            values, vectors = torch.linalg.eigh(cov.double())
            values = values.clamp_min(0) + WHITEN_RIDGE * values.clamp_min(0).mean()
            self.whiten.copy_((vectors * values.rsqrt()) @ vectors.T)

    def forward(self, face: Tensor, dtype: torch.dtype) -> Tensor:
        with torch.autocast(device_type=face.device.type, enabled=False):
            if self.mode == "standardize":
                face = (face.float() - self.mean) / self.std
            elif self.mode == "whiten":
                face = (face.float() - self.mean) @ self.whiten
        return face.to(dtype)


def read_legacy_buffers(model: nn.Module, state_dict: dict[str, Any], prefix: str,
                        *args: Any) -> None:
    """A load_state_dict pre-hook for a model with a ``face_norm``: renames the keys of older
    checkpoints (:data:`LEGACY_BUFFERS`) before loading."""
    for old, new in LEGACY_BUFFERS.items():
        if prefix + old in state_dict and prefix + new not in state_dict:
            state_dict[prefix + new] = state_dict.pop(prefix + old)
