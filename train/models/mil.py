"""Multiple-instance learning over a segment's face frames (DESIGN.md "Model spec", MIL).

The scorer is the attention of Ilse et al. (2018), the paper's eq. 3: ``a_q = softmax_q(wᵀ tanh(V
x_q))`` with ``x_q`` the frame's mean token (``scorer_input``: or each token scored and the scores
averaged, ``tokens``; or so on each token minus the same position's mean over the bag's frames,
``deviation``). ``topk`` keeps the K highest-scoring frames in time order and multiplies each kept
frame's tokens by ``K * a_q / Σ_kept a``: the score weights the tokens, so the scorer gets gradient
(the released code's 1.4 B-parameter scorer only fed ``torch.topk`` and never learned), and
uniform scores leave the tokens unchanged (``topk_gradient="all"``: ``Σ_kept a`` is held constant
in the backward pass, so the gradient reaches the frames left out too). ``amil`` is the weighted
sum ``Σ_q a_q X_q`` over all frames (49 tokens); ``all`` every frame's tokens, unselected (490);
``mean`` the plain mean; ``none`` frame 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MIL_MODES = ("topk", "all", "none", "mean", "amil")
SCORED_MODES = ("topk", "amil")
"""The modes with a learned scorer (the others pool without one)."""


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
        if mode not in MIL_MODES:
            raise ValueError(f"unknown mil {mode!r}: {', '.join(MIL_MODES)}")
        self.mode = mode
        self.topk_gradient = topk_gradient
        self.scorer_input = scorer_input
        self.n_frames = n_frames
        self.top_k = min(top_k, n_frames)
        self.scorer = FrameScorer(dim=token_dim, hidden=hidden) if mode in SCORED_MODES else None

    def out_frames(self) -> int:
        return {"topk": self.top_k, "all": self.n_frames}.get(self.mode, 1)

    def scores(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, F, T, D) -> (B, F) attention scores of the frames (``topk`` and ``amil``)."""
        assert self.scorer is not None, f"mil={self.mode} scores no frames"
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
