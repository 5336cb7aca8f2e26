"""The token front end of the fusion and concat heads: EEG and face inputs -> token sets.

Face tokens (B, 10, 49, 768) from the frozen Swin-tiny, optionally with a (B, 10) mask of the
frames with a face detection:

0. :class:`~train.models.face_norm.FaceNorm` (``face_norm``, default ``none``, the paper's);
1. MIL over the 10 frames (:class:`~train.models.mil.MilPooling`, ``mil``, top-3 by default);
2. a linear map 768 -> ``d_model`` when they differ (identity at the paper's width);
3. balancing (:class:`~train.models.balance.Balancer`, ``balance``, 64 cross-attention queries).

EEG (B, 32, 384): one token per channel, or per band, from the registered tokenizer
``eeg_tokenizer`` (:mod:`train.models.eeg_tokenizers`).

``modality_dropout`` p (training a two-modality model only, off in the paper): a segment's EEG
tokens are dropped with probability p, else its face tokens with probability p, so each path
learns to classify alone (:meth:`TokenHeads.dropped_modalities`; the model decides what dropping
means for it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from train.models.balance import Balancer
from train.models.base import FitStatistics, HeadModel
from train.models.eeg_tokenizers import EegTokenizer, create_tokenizer
from train.models.face_norm import FaceNorm, read_legacy_buffers
from train.models.mil import MilPooling


def fit_input_statistics(stats: FitStatistics, *, eeg_tokenizer: EegTokenizer | None,
                         face_norm: FaceNorm | None) -> None:
    """Fit the tokenizer's and the face normalisation's statistics, reading only what they use."""
    if eeg_tokenizer is not None and eeg_tokenizer.needs_statistics:
        eeg_tokenizer.fit_statistics(stats.eeg_windows())
    if face_norm is not None and face_norm.needs_statistics:
        face_norm.fit_statistics(*stats.face_statistics(covariance=face_norm.needs_covariance))


class TokenHeads(HeadModel):
    """EEG tokens (B, n_eeg_tokens, d) and face tokens (B, n_face_out, d) for the heads on top;
    a subclass sets ``uses_eeg`` / ``uses_face`` and builds only the paths it reads."""

    def __init__(
        self, *, num_classes: int, d_model: int, token_dim: int, n_frames: int,
        n_face_tokens: int, eeg_channels: int, eeg_samples: int, eeg_sfreq: float,
        eeg_tokenizer: str, face_norm: str, mil: str, top_k: int, mil_hidden: int,
        mil_scorer_input: str, topk_gradient: str, mask_undetected: bool, balance: str,
        n_queries: int, balance_heads: int, mlp_hidden: int, dropout: float,
        modality_dropout: float,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.d_model = d_model
        self.mask_undetected = mask_undetected
        self.modality_dropout = modality_dropout
        self.n_eeg_tokens = self.n_face_out = 0
        self.eeg_tokenizer: EegTokenizer | None = None
        self.face_norm: FaceNorm | None = None
        self.mil: MilPooling | None = None
        if self.uses_eeg:
            self.eeg_tokenizer = create_tokenizer(eeg_tokenizer, eeg_samples=eeg_samples,
                                                  eeg_channels=eeg_channels, sfreq=eeg_sfreq,
                                                  d_model=d_model)
            self.n_eeg_tokens = self.eeg_tokenizer.n_tokens
        if self.uses_face:
            self.face_norm = FaceNorm(mode=face_norm, n_face_tokens=n_face_tokens, token_dim=token_dim)
            self.register_load_state_dict_pre_hook(read_legacy_buffers)
            self.mil = MilPooling(mode=mil, token_dim=token_dim, hidden=mil_hidden, top_k=top_k,
                                  n_frames=n_frames, scorer_input=mil_scorer_input,
                                  topk_gradient=topk_gradient)
            self.face_proj = nn.Identity() if token_dim == d_model else nn.Linear(token_dim, d_model)
            self.balancer = Balancer(mode=balance, d_model=d_model, n_queries=n_queries,
                                     heads=balance_heads, mlp_hidden=mlp_hidden, dropout=dropout)
            self.n_face_out = self.balancer.out_tokens(self.mil.out_frames() * n_face_tokens)

    def fit_statistics(self, stats: FitStatistics) -> None:
        fit_input_statistics(stats, eeg_tokenizer=self.eeg_tokenizer, face_norm=self.face_norm)

    def eeg_tokens(self, eeg: Tensor | None) -> Tensor:
        """(B, 32, 384) EEG windows -> (B, n_eeg_tokens, d)."""
        if eeg is None:
            raise ValueError(f"a {type(self).__name__} model needs EEG input")
        assert self.eeg_tokenizer is not None
        return self.eeg_tokenizer(eeg.to(self.param_dtype()))

    def face_input(self, face: Tensor) -> Tensor:
        """Cached tokens (float16 from the store) in the parameters' dtype, normalised as
        ``face_norm`` says."""
        assert self.face_norm is not None, f"a {type(self).__name__} model reads no face tokens"
        return self.face_norm(face, self.param_dtype())

    def face_tokens(self, face: Tensor | None, frame_mask: Tensor | None = None
                    ) -> tuple[Tensor, Tensor | None]:
        """(B, F, 49, 768) cached tokens -> balanced face tokens (B, T, d) and MIL frame scores."""
        if face is None:
            raise ValueError(f"a {type(self).__name__} model needs face tokens")
        assert self.mil is not None
        tokens, scores = self.mil(self.face_input(face), frame_mask if self.mask_undetected else None)
        return self.balancer(self.face_proj(tokens)), scores

    def frame_scores(self, face: Tensor, frame_mask: Tensor | None = None) -> Tensor | None:
        if self.mil is None or self.mil.scorer is None:
            return None
        return self.mil.scores(self.face_input(face), frame_mask if self.mask_undetected else None)

    @torch.no_grad()
    def frame_picks(self, face: Tensor, frame_mask: Tensor | None = None) -> Tensor | None:
        if self.mil is None or self.mil.mode != "topk":
            return None
        scores = self.frame_scores(face, frame_mask)
        assert scores is not None
        return scores.float().topk(self.mil.top_k, dim=1).indices

    def dropped_modalities(self, batch: int, *, device: torch.device) -> Tensor | None:
        """(B, 2) bool, [EEG dropped, face dropped] per segment, when ``modality_dropout``
        applies (training a model that reads both); else ``None``."""
        if not (self.training and self.modality_dropout > 0 and self.uses_eeg and self.uses_face):
            return None
        draw = torch.rand(batch, device=device)
        p = self.modality_dropout
        return torch.stack([draw < p, (draw >= p) & (draw < 2 * p)], dim=1)
