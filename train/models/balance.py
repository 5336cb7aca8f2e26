"""Balancing the face tokens against the EEG tokens (DESIGN.md "Model spec", Table 4).

``cross_attention``: N learnable queries attend to the MIL-selected tokens (no norm on the keys and
values, so the MIL weights matter), N tokens out; ``mlp``: a per-token MLP d -> hidden -> d;
``none``: the tokens as selected.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

BALANCE_MODES = ("cross_attention", "none", "mlp")


class Balancer(nn.Module):
    """Selected face tokens (B, T, d) -> balanced tokens (B, T', d)."""

    def __init__(self, *, mode: str = "cross_attention", d_model: int = 768, n_queries: int = 64,
                 heads: int = 12, mlp_hidden: int = 3072, dropout: float = 0.2) -> None:
        super().__init__()
        if mode not in BALANCE_MODES:
            raise ValueError(f"unknown balance {mode!r}: {', '.join(BALANCE_MODES)}")
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
