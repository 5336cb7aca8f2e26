"""Milmer: transformer fusion of EEG and face tokens (DESIGN.md "Model spec"), and its one-modality
forms, EEG only and face only (the paper's Table 5 rows).

``[CLS] + (EEG tokens + pos_eeg + type_eeg) + (face tokens + pos_face + type_face)`` ->
TransformerEncoder (post-norm, as ``nn.TransformerEncoderLayer`` defaults and the paper's code) ->
CLS output -> Dropout(0.1) -> Linear. The tokens come from :class:`~train.models.tokens.TokenHeads`
(EEG tokenizer; face normalisation, MIL, projection, balancing). With ``modality_dropout``, a
dropped modality's tokens are masked out of attention (the CLS token never is).

Registered kinds: ``fusion`` (:class:`Milmer`), ``eeg`` (:class:`MilmerEeg`) and ``face``
(:class:`MilmerFace`): the same transformer over the tokens of one modality.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from train.models.registry import register_model
from train.models.tokens import TokenHeads


@register_model("fusion")
class Milmer(TokenHeads):
    """Transformer fusion of EEG and face tokens; the arguments and their defaults are the
    paper's (``train.config.ModelConfig`` documents each)."""

    def __init__(
        self, *, num_classes: int = 4, d_model: int = 768, token_dim: int = 768,
        n_frames: int = 10, n_face_tokens: int = 49, eeg_channels: int = 32,
        eeg_samples: int = 384, eeg_sfreq: float = 128.0, eeg_tokenizer: str = "raw",
        face_norm: str = "none", mil: str = "topk", top_k: int = 3, mil_hidden: int = 128,
        mil_scorer_input: str = "mean", topk_gradient: str = "kept",
        mask_undetected: bool = False, balance: str = "cross_attention", n_queries: int = 64,
        balance_heads: int = 12, mlp_hidden: int = 3072, fusion_layers: int = 2,
        fusion_heads: int = 12, fusion_ff: int = 2048, dropout: float = 0.2,
        cls_dropout: float = 0.1, modality_dropout: float = 0.0,
        position_embeddings: bool = True, modality_embeddings: bool = True,
    ) -> None:
        super().__init__(
            num_classes=num_classes, d_model=d_model, token_dim=token_dim, n_frames=n_frames,
            n_face_tokens=n_face_tokens, eeg_channels=eeg_channels, eeg_samples=eeg_samples,
            eeg_sfreq=eeg_sfreq, eeg_tokenizer=eeg_tokenizer, face_norm=face_norm, mil=mil,
            top_k=top_k, mil_hidden=mil_hidden, mil_scorer_input=mil_scorer_input,
            topk_gradient=topk_gradient, mask_undetected=mask_undetected, balance=balance,
            n_queries=n_queries, balance_heads=balance_heads, mlp_hidden=mlp_hidden,
            dropout=dropout, modality_dropout=modality_dropout)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.normal_(self.cls_token, std=0.02)
        self.modality_embed = nn.Embedding(2, d_model) if modality_embeddings else None
        self.pos_eeg = self.pos_face = None
        if position_embeddings:
            if self.uses_eeg:
                self.pos_eeg = nn.Parameter(torch.zeros(1, self.n_eeg_tokens, d_model))
                nn.init.trunc_normal_(self.pos_eeg, std=0.02)
            if self.uses_face:
                self.pos_face = nn.Parameter(torch.zeros(1, self.n_face_out, d_model))
                nn.init.trunc_normal_(self.pos_face, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, fusion_heads, dim_feedforward=fusion_ff,
                                           dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=fusion_layers,
                                             enable_nested_tensor=False)
        self.cls_drop = nn.Dropout(cls_dropout)
        self.classifier = nn.Linear(d_model, num_classes)

    def _embed(self, tokens: Tensor, pos: Tensor | None, modality: int) -> Tensor:
        if pos is not None:
            tokens = tokens + pos
        if self.modality_embed is not None:
            tokens = tokens + self.modality_embed.weight[modality]
        return tokens

    def forward_features(self, eeg: Tensor | None = None, face: Tensor | None = None,
                         frame_mask: Tensor | None = None) -> Tensor:
        """The CLS output (B, d)."""
        parts: list[Tensor] = []
        if self.uses_eeg:
            eeg_tok = self.eeg_tokens(eeg)
        if self.uses_face:
            face_tok, _ = self.face_tokens(face, frame_mask)
        first = eeg_tok if self.uses_eeg else face_tok
        batch = first.shape[0]
        dropped = self.dropped_modalities(batch, device=first.device)
        parts.append(self.cls_token.expand(batch, -1, -1))
        if self.uses_eeg:
            parts.append(self._embed(eeg_tok, self.pos_eeg, 0))
        if self.uses_face:
            parts.append(self._embed(face_tok, self.pos_face, 1))
        padding = None
        if dropped is not None:  # True: masked out of attention (the CLS token never is)
            padding = torch.cat([dropped.new_zeros(batch, 1),
                                 dropped[:, :1].expand(batch, self.n_eeg_tokens),
                                 dropped[:, 1:].expand(batch, self.n_face_out)], dim=1)
        return self.encoder(torch.cat(parts, dim=1), src_key_padding_mask=padding)[:, 0]

    def forward_head(self, features: Tensor) -> Tensor:
        return self.classifier(self.cls_drop(features))


@register_model("eeg")
class MilmerEeg(Milmer):
    """The fusion transformer over the EEG tokens alone (the face arguments are unused)."""

    uses_face = False


@register_model("face")
class MilmerFace(Milmer):
    """The fusion transformer over the face tokens alone (the EEG arguments are unused)."""

    uses_eeg = False
