"""Deep CCA fusion baseline (Andrew et al., ICML 2013), the paper's Table 5 row.

Two encoders, one per modality, are trained with the CCA objective alone: maximise the canonical
correlations of their ``cca_dim``-dimensional outputs over the batch, ``cca_reg`` added to the
covariances' diagonals. Andrew et al. maximise the sum of the correlations (the trace norm of
``T = Σ11^-½ Σ12 Σ22^-½``) with full-batch L-BFGS; on mini-batches of 14 its gradient is NaN
whenever correlations coincide, so this maximises the sum of their squares, ``‖T‖_F²``, whose
gradient is smooth (the same optimum: every correlation 1). A linear classifier is trained
on the concatenated projections with cross-entropy, on detached inputs: labels never shape the
encoders, as in the original, where a classifier is fitted on the learned projections. Both are
trained in one loop here (the CCA term is the model's :meth:`~DeepCcaHead.auxiliary_loss`).

EEG encoder: the EEG tokenizer's channel tokens, mean-pooled, then an MLP; face encoder: the
cached Swin tokens mean-pooled over frames and tokens, then an MLP.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def cca_loss(h1: Tensor, h2: Tensor, *, reg: float = 1e-3) -> Tensor:
    """Minus the sum of squared canonical correlations of two views (n, k) over the batch."""
    with torch.autocast(device_type=h1.device.type, enabled=False):
        h1, h2 = h1.float(), h2.float()
        n, k = h1.shape
        if n < 2:
            return h1.sum() * 0.0
        h1 = h1 - h1.mean(dim=0)
        h2 = h2 - h2.mean(dim=0)
        eye = torch.eye(k, device=h1.device)
        s11 = h1.T @ h1 / (n - 1) + reg * eye
        s22 = h2.T @ h2 / (n - 1) + reg * eye
        s12 = h1.T @ h2 / (n - 1)

        # ‖Σ11^-½ Σ12 Σ22^-½‖_F² = tr(Σ11⁻¹ Σ12 Σ22⁻¹ Σ21), through solves: no eigen- or
        # singular-value gradients, which are NaN when values repeat (any batch smaller than k)
        return -torch.trace(torch.linalg.solve(s11, s12) @ torch.linalg.solve(s22, s12.T))


def _mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, dim_out))


class DeepCcaHead(nn.Module):
    """Pooled EEG tokens (B, d) and pooled face tokens (B, D) -> projections (B, 2k) -> logits."""

    def __init__(self, *, eeg_dim: int, face_dim: int, hidden: int, dim: int, num_classes: int,
                 reg: float, weight: float) -> None:
        super().__init__()
        self.eeg_encoder = _mlp(eeg_dim, hidden, dim)
        self.face_encoder = _mlp(face_dim, hidden, dim)
        self.classifier = nn.Linear(2 * dim, num_classes)
        self.reg, self.weight = reg, weight
        self._aux: Tensor | None = None

    def project(self, eeg_pooled: Tensor, face_pooled: Tensor) -> Tensor:
        h1, h2 = self.eeg_encoder(eeg_pooled), self.face_encoder(face_pooled)
        self._aux = self.weight * cca_loss(h1, h2, reg=self.reg) if self.training else None
        return torch.cat([h1, h2], dim=1)

    def classify(self, projections: Tensor) -> Tensor:
        return self.classifier(projections.detach())  # the encoders learn from CCA only

    def auxiliary_loss(self) -> Tensor | None:
        """The CCA term of the last training forward pass (``None`` in eval mode)."""
        return self._aux
