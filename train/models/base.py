"""What the trainer may call on a model: :class:`HeadModel`, and :class:`FitStatistics`, the
training-fold statistics a model asks for before it trains.

A head model is an ``nn.Module`` in timm's shape (constructor arguments are its config,
``forward_features`` then ``forward_head``) that also says which inputs it reads (``uses_eeg``,
``uses_face``: the trainer reads only those from the store), fits the statistics it standardises
its inputs with (:meth:`HeadModel.fit_statistics`), names the frames its MIL keeps
(:meth:`HeadModel.frame_picks`) and adds a term to the loss (:meth:`HeadModel.auxiliary_loss`).
The defaults do nothing, so a model overrides only what it has.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn


class FitStatistics(Protocol):
    """The rows a model is fitted on (never validation or test), read only when asked for."""

    def eeg_windows(self) -> Tensor:
        """EEG windows (n, 32, 384) float32 of the fit rows, on the model's device."""
        ...

    def face_statistics(self, *, covariance: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """Per token position mean and std (49, 768) of the fit rows' frames and, with
        ``covariance``, the (768, 768) covariance of the centred tokens; on the model's device."""
        ...


class HeadModel(nn.Module):
    """A model trained on cached tokens: ``forward(eeg, face, frame_mask) -> logits``."""

    uses_eeg: ClassVar[bool] = True
    """Reads EEG windows (B, 32, 384)."""
    uses_face: ClassVar[bool] = True
    """Reads face tokens (B, 10, 49, 768) and the frames' detection mask (B, 10)."""

    def fit_statistics(self, stats: FitStatistics) -> None:
        """Fit what the model standardises its inputs with on the training rows; nothing here."""

    def frame_scores(self, face: Tensor, frame_mask: Tensor | None = None) -> Tensor | None:
        """(B, F) MIL attention scores of the frames; ``None`` for a model that scores none."""
        return None

    @torch.no_grad()
    def frame_picks(self, face: Tensor, frame_mask: Tensor | None = None) -> Tensor | None:
        """(B, K) the frames a top-K MIL keeps (by score); ``None`` for a model without one."""
        return None

    def auxiliary_loss(self) -> Tensor | None:
        """A term the last training forward pass adds to the loss; ``None`` when there is none."""
        return None

    def forward_features(self, eeg: Tensor | None = None, face: Tensor | None = None,
                         frame_mask: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def forward_head(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, eeg: Tensor | None = None, face: Tensor | None = None,
                frame_mask: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(eeg, face, frame_mask))

    def param_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
