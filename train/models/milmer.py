"""Milmer heads over cached tokens (DESIGN.md "Model spec"), written like a timm model file.

Inputs per segment: EEG (32, 384) float and face tokens (10 frames, 49, 768) from the frozen
Swin-tiny, optionally a (10,) bool mask of frames with a face detection.

Path of the face tokens (``kind`` fusion / concat / face):

0. ``face_norm`` (default ``none``, the paper's): ``standardize`` or ``whiten`` the cached tokens with
   statistics of the training fold (:meth:`Milmer.fit_face_statistics`). Frozen random-weight
   tokens have an effective rank of ~5 of 768; unwhitened, the heads cannot fit the expression.
1. MIL over the 10 frames (:class:`MilPooling`). The scorer is the attention of Ilse et al.
   (2018), the paper's eq. 3: ``a_q = softmax_q(wᵀ tanh(V x_q))`` with ``x_q`` the frame's mean
   token (``mil_scorer_input``: or each token scored and the scores averaged, ``tokens``; or so
   on each token minus the same position's mean over the bag's frames, ``deviation``).
   ``topk`` keeps the K highest-scoring frames in time order and multiplies each kept frame's
   tokens by ``K * a_q / Σ_kept a``: the score weights the tokens, so the scorer gets gradient
   (the released code's 1.4 B-parameter scorer only fed ``torch.topk`` and never learned), and
   uniform scores leave the tokens unchanged (``topk_gradient="all"``: ``Σ_kept a`` is held
   constant in the backward pass, so the gradient reaches the frames left out too). ``amil`` is
   the weighted sum ``Σ_q a_q X_q`` over all frames (49 tokens); ``all`` every frame's tokens,
   unselected (490); ``mean`` the plain mean; ``none`` frame 0.
2. A linear map 768 -> ``d_model`` when they differ (identity at the paper's width).
3. Balancing (:class:`Balancer`): cross-attention from N learnable queries onto the selected
   tokens (no norm on the keys and values, so the MIL weights matter), a per-token MLP, or
   nothing.

EEG: one token per channel, 32 tokens (:mod:`train.models.eeg_tokenizers`): the paper's raw
samples -> LayerNorm(384) -> Linear(384 -> d) -> ReLU, or a spectral tokenizer (log band power,
standardised with training-fold statistics, -> Linear); ``band_maps``: one token per 2 Hz band
instead, the band's power over the 32 channels (22 tokens).

Fusion: ``[CLS] + (EEG tokens + pos_eeg + type_eeg) + (face tokens + pos_face + type_face)``
-> TransformerEncoder (post-norm, as ``nn.TransformerEncoderLayer`` defaults and the paper's code)
-> CLS output -> Dropout(0.1) -> Linear. ``modality_dropout`` p (training only, off in the
paper): a segment's EEG tokens are masked out of attention with probability p, else its face
tokens with probability p, so each path learns to classify alone. ``eeg``/``face`` drop the
other modality; ``concat`` replaces the transformer by the concatenation of the two mean-pooled
token sets and an MLP; ``deepcca`` is the Deep CCA baseline (:mod:`train.models.deepcca`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from train.config import ModelConfig
from train.models.deepcca import DeepCcaHead
from train.models.eeg_tokenizers import RawTokenizer, make_eeg_tokenizer


WHITEN_RIDGE = 0.01
"""``face_norm="whiten"``: added to the covariance's eigenvalues, times their mean."""

EegTokenizer = RawTokenizer
"""The paper's EEG tokenizer (``eeg_tokenizer="raw"``)."""


class FrameScorer(nn.Module):
    """Attention-based MIL scores (Ilse et al. 2018): softmax over frames of wᵀ tanh(V x)."""

    def __init__(self, *, dim: int, hidden: int) -> None:
        super().__init__()
        self.V = nn.Linear(dim, hidden)
        self.w = nn.Linear(hidden, 1, bias=False)

    def forward(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, F, D) pooled frame vectors, or (B, F, T, D) tokens scored one by one and averaged
        over T (``wᵀ mean_t tanh(V x_t)``: a deviation in a few patches, such as the mouth's,
        is not averaged away before the non-linearity) -> (B, F) scores."""
        hidden = torch.tanh(self.V(frames))
        if frames.dim() == 4:
            hidden = hidden.mean(dim=2)
        logits = self.w(hidden).squeeze(-1)
        if mask is not None:
            usable = mask.any(dim=1, keepdim=True)  # a bag with no detected frame scores them all
            logits = logits.masked_fill(~mask & usable, float("-inf"))
        return logits.softmax(dim=-1)


class MilPooling(nn.Module):
    """Frames (B, F, T, D) -> face tokens (B, T', D) and the frame scores (B, F) (or None)."""

    def __init__(self, *, mode: str = "topk", token_dim: int = 768, hidden: int = 128,
                 top_k: int = 3, n_frames: int = 10, scorer_input: str = "mean",
                 topk_gradient: str = "kept") -> None:
        super().__init__()
        self.mode = mode
        self.topk_gradient = topk_gradient
        self.scorer_input = scorer_input
        self.n_frames = n_frames
        self.top_k = min(top_k, n_frames)
        self.scorer = FrameScorer(dim=token_dim, hidden=hidden) if mode in ("topk", "amil") else None

    def out_frames(self) -> int:
        return {"topk": self.top_k, "all": self.n_frames}.get(self.mode, 1)

    def scores(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, F, T, D) -> (B, F) attention scores of the frames (``topk`` and ``amil``)."""
        assert self.scorer is not None
        if self.scorer_input == "mean":
            return self.scorer(frames.mean(dim=2), mask)
        if self.scorer_input == "deviation":
            # What a frame does that the bag's other frames do not: the face, the light and the
            # head pose a window's frames share cancel, a short expression stands out.
            frames = frames - frames.mean(dim=1, keepdim=True)
        return self.scorer(frames, mask)

    def forward(self, frames: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        b, n_frames, n_tok, dim = frames.shape
        if self.mode == "none":
            return frames[:, 0], None
        if self.mode == "all":
            return frames.reshape(b, n_frames * n_tok, dim), None
        if self.mode == "mean":
            return frames.mean(dim=1), None
        scores = self.scores(frames, mask)  # (B, F)
        if self.mode == "amil":
            return torch.einsum("bf,bftd->btd", scores, frames), scores
        top = scores.topk(self.top_k, dim=1).indices.sort(dim=1).values  # kept frames, time order
        kept = scores.gather(1, top)  # (B, K)
        total = kept.sum(dim=1, keepdim=True)
        if self.topk_gradient == "all":
            # Same weights forward; backward, a kept frame's weight moves with its softmax score
            # alone, whose normaliser runs over every frame: lowering a useless kept frame raises
            # the frames left out, so one of them can enter the top K.
            total = total.detach()
        weights = kept * (self.top_k / total)
        chosen = frames.gather(1, top[:, :, None, None].expand(b, self.top_k, n_tok, dim))
        chosen = chosen * weights[:, :, None, None].to(chosen.dtype)
        return chosen.reshape(b, self.top_k * n_tok, dim), scores


class Balancer(nn.Module):
    """Selected face tokens (B, T, d) -> balanced tokens (B, T', d)."""

    def __init__(self, *, mode: str = "cross_attention", d_model: int = 768, n_queries: int = 64,
                 heads: int = 12, mlp_hidden: int = 3072, dropout: float = 0.2) -> None:
        super().__init__()
        self.mode = mode
        self.n_queries = n_queries
        if mode == "cross_attention":
            self.queries = nn.Parameter(torch.zeros(1, n_queries, d_model))
            nn.init.normal_(self.queries, std=0.02)
            self.attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        elif mode == "mlp":
            self.mlp = nn.Sequential(nn.Linear(d_model, mlp_hidden), nn.GELU(),
                                     nn.Linear(mlp_hidden, d_model))

    def out_tokens(self, n_in: int) -> int:
        return self.n_queries if self.mode == "cross_attention" else n_in

    def forward(self, tokens: Tensor) -> Tensor:
        if self.mode == "cross_attention":
            queries = self.queries.expand(tokens.shape[0], -1, -1)
            out, _ = self.attn(queries, tokens, tokens, need_weights=False)
            return out
        if self.mode == "mlp":
            return self.mlp(tokens)
        return tokens


class Milmer(nn.Module):
    """The Milmer heads and their baselines; constructor arguments are
    :class:`train.config.ModelConfig` fields plus ``num_classes``."""

    def __init__(
        self, *, num_classes: int = 4, kind: str = "fusion", d_model: int = 768,
        token_dim: int = 768, n_frames: int = 10, n_face_tokens: int = 49, eeg_channels: int = 32,
        eeg_samples: int = 384, eeg_sfreq: float = 128.0, eeg_tokenizer: str = "raw",
        face_norm: str = "none", mil: str = "topk", top_k: int = 3, mil_hidden: int = 128,
        mil_scorer_input: str = "mean", topk_gradient: str = "kept",
        mask_undetected: bool = False, balance: str = "cross_attention", n_queries: int = 64,
        balance_heads: int = 12, mlp_hidden: int = 3072, fusion_layers: int = 2,
        fusion_heads: int = 12, fusion_ff: int = 2048, dropout: float = 0.2,
        cls_dropout: float = 0.1, modality_dropout: float = 0.0, position_embeddings: bool = True,
        modality_embeddings: bool = True,
        concat_hidden: int = 768, cca_dim: int = 8, cca_hidden: int = 256, cca_reg: float = 1e-3,
        cca_weight: float = 1.0,
    ) -> None:
        """Arguments: the fields of :class:`train.config.ModelConfig` (same defaults, the paper's;
        a test holds them equal), validated there, plus ``num_classes``."""
        settings = {k: v for k, v in locals().items() if k not in ("self", "num_classes", "__class__")}
        super().__init__()
        c = ModelConfig(**settings)
        self.kind = c.kind
        self.num_classes = num_classes
        self.d_model = c.d_model
        self.mask_undetected = c.mask_undetected
        self.modality_dropout = c.modality_dropout
        self.use_eeg = "eeg" in c.modalities
        self.use_face = "face" in c.modalities
        self.n_eeg_tokens = c.eeg_channels if self.use_eeg else 0
        self.n_face_out = 0

        if self.use_eeg:
            self.eeg_tokenizer = make_eeg_tokenizer(
                c.eeg_tokenizer, eeg_samples=c.eeg_samples, eeg_channels=c.eeg_channels,
                sfreq=c.eeg_sfreq, d_model=c.d_model)
            self.n_eeg_tokens = self.eeg_tokenizer.n_tokens or c.eeg_channels
        self.face_norm = c.face_norm if self.use_face else "none"
        if self.face_norm != "none":
            self.register_buffer("face_mean", torch.zeros(c.n_face_tokens, c.token_dim))
        if self.face_norm == "standardize":
            self.register_buffer("face_std", torch.ones(c.n_face_tokens, c.token_dim))
        if self.face_norm == "whiten":
            self.register_buffer("face_whiten", torch.eye(c.token_dim))
        if c.kind == "deepcca":
            self.cca = DeepCcaHead(eeg_dim=c.d_model, face_dim=c.token_dim, hidden=c.cca_hidden,
                                   dim=c.cca_dim, num_classes=num_classes, reg=c.cca_reg,
                                   weight=c.cca_weight)
            return
        if self.use_face:
            self.mil = MilPooling(mode=c.mil, token_dim=c.token_dim, hidden=c.mil_hidden,
                                  top_k=c.top_k, n_frames=c.n_frames,
                                  scorer_input=c.mil_scorer_input,
                                  topk_gradient=c.topk_gradient)
            self.face_proj = (nn.Identity() if c.token_dim == c.d_model
                              else nn.Linear(c.token_dim, c.d_model))
            self.balancer = Balancer(mode=c.balance, d_model=c.d_model, n_queries=c.n_queries,
                                     heads=c.balance_heads, mlp_hidden=c.mlp_hidden, dropout=c.dropout)
            self.n_face_out = self.balancer.out_tokens(self.mil.out_frames() * c.n_face_tokens)

        if c.kind == "concat":
            self.head = nn.Sequential(
                nn.Linear(2 * c.d_model, c.concat_hidden), nn.ReLU(), nn.Dropout(c.cls_dropout),
                nn.Linear(c.concat_hidden, num_classes))
            return

        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        nn.init.normal_(self.cls_token, std=0.02)
        self.modality_embed = nn.Embedding(2, c.d_model) if c.modality_embeddings else None
        self.pos_eeg = self.pos_face = None
        if c.position_embeddings:
            if self.use_eeg:
                self.pos_eeg = nn.Parameter(torch.zeros(1, self.n_eeg_tokens, c.d_model))
                nn.init.trunc_normal_(self.pos_eeg, std=0.02)
            if self.use_face:
                self.pos_face = nn.Parameter(torch.zeros(1, self.n_face_out, c.d_model))
                nn.init.trunc_normal_(self.pos_face, std=0.02)
        layer = nn.TransformerEncoderLayer(c.d_model, c.fusion_heads, dim_feedforward=c.fusion_ff,
                                           dropout=c.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=c.fusion_layers,
                                             enable_nested_tensor=False)
        self.cls_drop = nn.Dropout(c.cls_dropout)
        self.classifier = nn.Linear(c.d_model, num_classes)

    # -- pieces ----------------------------------------------------------------------------

    @torch.no_grad()
    def fit_face_statistics(self, mean: Tensor, std: Tensor, cov: Tensor | None) -> None:
        """The training fold's token statistics (:meth:`train.data.StoreData.token_statistics`)
        for ``face_norm``: per position mean (49, 768) and std, and the covariance (768, 768)
        of the centred tokens. ``whiten`` keeps its inverse square root, the eigenvalues raised
        by ``WHITEN_RIDGE`` x their mean so that directions the fold barely spans stay finite."""
        if self.face_norm == "none":
            return
        self.face_mean.copy_(mean)
        if self.face_norm == "standardize":
            self.face_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        else:
            assert cov is not None, "face_norm=whiten needs the covariance"
            values, vectors = torch.linalg.eigh(cov.double())
            values = values.clamp_min(0) + WHITEN_RIDGE * values.clamp_min(0).mean()
            self.face_whiten.copy_((vectors * values.rsqrt()) @ vectors.T)

    def face_input(self, face: Tensor) -> Tensor:
        """Cached tokens (float16 from the store) in the parameters' dtype, standardised or
        whitened when ``face_norm`` says so, in float32 even under autocast (the inverse square
        root multiplies the low-variance directions that carry the cue by up to 10)."""
        with torch.autocast(device_type=face.device.type, enabled=False):
            if self.face_norm == "standardize":
                face = (face.float() - self.face_mean) / self.face_std
            elif self.face_norm == "whiten":
                face = (face.float() - self.face_mean) @ self.face_whiten
        return face.to(self.param_dtype())

    def face_tokens(self, face: Tensor, frame_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(B, F, 49, 768) cached tokens -> balanced face tokens (B, T, d) and MIL frame scores."""
        face = self.face_input(face)
        tokens, scores = self.mil(face, frame_mask if self.mask_undetected else None)
        return self.balancer(self.face_proj(tokens)), scores

    def auxiliary_loss(self) -> Tensor | None:
        """A term the last training forward pass adds to the loss (deepcca's CCA objective)."""
        return self.cca.auxiliary_loss() if self.kind == "deepcca" else None

    def param_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _embed(self, tokens: Tensor, pos: Tensor | None, modality: int) -> Tensor:
        if pos is not None:
            tokens = tokens + pos
        if self.modality_embed is not None:
            tokens = tokens + self.modality_embed.weight[modality]
        return tokens

    # -- timm-style API --------------------------------------------------------------------

    def forward_features(self, eeg: Tensor | None = None, face: Tensor | None = None,
                         frame_mask: Tensor | None = None) -> Tensor:
        """Pooled representation (B, d) (CLS output), or (B, 2d) for ``concat``."""
        parts: list[Tensor] = []
        if self.use_eeg:
            if eeg is None:
                raise ValueError(f"a {self.kind} model needs EEG input")
            eeg_tok = self.eeg_tokenizer(eeg.to(self.param_dtype()))
        if self.kind == "deepcca":
            if face is None:
                raise ValueError("a deepcca model needs face tokens")
            face_pooled = self.face_input(face).mean(dim=(1, 2))
            return self.cca.project(eeg_tok.mean(dim=1), face_pooled)
        if self.use_face:
            if face is None:
                raise ValueError(f"a {self.kind} model needs face tokens")
            face_tok, _ = self.face_tokens(face, frame_mask)
        first = eeg if eeg is not None else face
        batch = first.shape[0]  # type: ignore[union-attr]
        dropped = self.dropped_modalities(batch, device=first.device)  # type: ignore[union-attr]
        if self.kind == "concat":
            eeg_vec, face_vec = eeg_tok.mean(dim=1), face_tok.mean(dim=1)
            if dropped is not None:
                eeg_vec = eeg_vec.masked_fill(dropped[:, :1], 0.0)
                face_vec = face_vec.masked_fill(dropped[:, 1:], 0.0)
            return torch.cat([eeg_vec, face_vec], dim=1)
        parts.append(self.cls_token.expand(batch, -1, -1))
        if self.use_eeg:
            parts.append(self._embed(eeg_tok, self.pos_eeg, 0))
        if self.use_face:
            parts.append(self._embed(face_tok, self.pos_face, 1))
        padding = None
        if dropped is not None:  # True: masked out of attention (the CLS token never is)
            padding = torch.cat([dropped.new_zeros(batch, 1),
                                 dropped[:, :1].expand(batch, self.n_eeg_tokens),
                                 dropped[:, 1:].expand(batch, self.n_face_out)], dim=1)
        return self.encoder(torch.cat(parts, dim=1), src_key_padding_mask=padding)[:, 0]

    def dropped_modalities(self, batch: int, *, device: torch.device) -> Tensor | None:
        """(B, 2) bool, [EEG dropped, face dropped] per segment, when ``modality_dropout``
        applies (training a two-modality fusion or concat head); else ``None``."""
        if not (self.training and self.modality_dropout > 0 and self.use_eeg and self.use_face):
            return None
        draw = torch.rand(batch, device=device)
        p = self.modality_dropout
        return torch.stack([draw < p, (draw >= p) & (draw < 2 * p)], dim=1)

    def forward_head(self, features: Tensor) -> Tensor:
        if self.kind == "deepcca":
            return self.cca.classify(features)
        if self.kind == "concat":
            return self.head(features)
        return self.classifier(self.cls_drop(features))

    def forward(self, eeg: Tensor | None = None, face: Tensor | None = None,
                frame_mask: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(eeg, face, frame_mask))


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["Balancer", "EegTokenizer", "FrameScorer", "MilPooling", "Milmer", "count_parameters"]
