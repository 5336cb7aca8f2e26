"""Concatenation baseline (the paper's Table 5): the mean of the EEG tokens and the mean of the
face tokens (the same front end as :class:`~train.models.fusion.Milmer`:
:class:`~train.models.tokens.TokenHeads`), concatenated, then an MLP 2d -> ``concat_hidden`` ->
classes. With ``modality_dropout``, a dropped modality's pooled vector is zeroed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from train.models.registry import register_model
from train.models.tokens import TokenHeads


@register_model("concat")
class ConcatFusion(TokenHeads):
    """Pooled EEG and face tokens concatenated, then an MLP."""

    def __init__(
        self, *, num_classes: int = 4, d_model: int = 768, token_dim: int = 768,
        n_frames: int = 10, n_face_tokens: int = 49, eeg_channels: int = 32,
        eeg_samples: int = 384, eeg_sfreq: float = 128.0, eeg_tokenizer: str = "raw",
        face_norm: str = "none", mil: str = "topk", top_k: int = 3, mil_hidden: int = 128,
        mil_scorer_input: str = "mean", topk_gradient: str = "kept",
        mask_undetected: bool = False, balance: str = "cross_attention", n_queries: int = 64,
        balance_heads: int = 12, mlp_hidden: int = 3072, dropout: float = 0.2,
        cls_dropout: float = 0.1, modality_dropout: float = 0.0, concat_hidden: int = 768,
    ) -> None:
        super().__init__(
            num_classes=num_classes, d_model=d_model, token_dim=token_dim, n_frames=n_frames,
            n_face_tokens=n_face_tokens, eeg_channels=eeg_channels, eeg_samples=eeg_samples,
            eeg_sfreq=eeg_sfreq, eeg_tokenizer=eeg_tokenizer, face_norm=face_norm, mil=mil,
            top_k=top_k, mil_hidden=mil_hidden, mil_scorer_input=mil_scorer_input,
            topk_gradient=topk_gradient, mask_undetected=mask_undetected, balance=balance,
            n_queries=n_queries, balance_heads=balance_heads, mlp_hidden=mlp_hidden,
            dropout=dropout, modality_dropout=modality_dropout)
        self.head = nn.Sequential(
            nn.Linear(2 * d_model, concat_hidden), nn.ReLU(), nn.Dropout(cls_dropout),
            nn.Linear(concat_hidden, num_classes))

    def forward_features(self, eeg: Tensor | None = None, face: Tensor | None = None,
                         frame_mask: Tensor | None = None) -> Tensor:
        """The pooled EEG and face vectors side by side (B, 2d)."""
        eeg_vec = self.eeg_tokens(eeg).mean(dim=1)
        face_vec = self.face_tokens(face, frame_mask)[0].mean(dim=1)
        dropped = self.dropped_modalities(eeg_vec.shape[0], device=eeg_vec.device)
        if dropped is not None:
            eeg_vec = eeg_vec.masked_fill(dropped[:, :1], 0.0)
            face_vec = face_vec.masked_fill(dropped[:, 1:], 0.0)
        return torch.cat([eeg_vec, face_vec], dim=1)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)
