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
cached Swin tokens (normalised as ``face_norm`` says) mean-pooled over frames and tokens, then an
MLP. Registered as ``deepcca`` (:class:`DeepCca`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from train.models.base import FitStatistics, HeadModel
from train.models.eeg_tokenizers import create_tokenizer
from train.models.face_norm import FaceNorm, read_legacy_buffers
from train.models.registry import register_model
from train.models.tokens import fit_input_statistics


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


@register_model("deepcca")
class DeepCca(HeadModel):
    """EEG tokens and face tokens, each pooled, through :class:`DeepCcaHead`."""

    def __init__(
        self, *, num_classes: int = 4, d_model: int = 768, token_dim: int = 768,
        n_face_tokens: int = 49, eeg_channels: int = 32, eeg_samples: int = 384,
        eeg_sfreq: float = 128.0, eeg_tokenizer: str = "raw", face_norm: str = "none",
        cca_dim: int = 8, cca_hidden: int = 256, cca_reg: float = 1e-3, cca_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.eeg_tokenizer = create_tokenizer(eeg_tokenizer, eeg_samples=eeg_samples,
                                              eeg_channels=eeg_channels, sfreq=eeg_sfreq,
                                              d_model=d_model)
        self.face_norm = FaceNorm(mode=face_norm, n_face_tokens=n_face_tokens, token_dim=token_dim)
        self.register_load_state_dict_pre_hook(read_legacy_buffers)
        self.cca = DeepCcaHead(eeg_dim=d_model, face_dim=token_dim, hidden=cca_hidden, dim=cca_dim,
                               num_classes=num_classes, reg=cca_reg, weight=cca_weight)

    def fit_statistics(self, stats: FitStatistics) -> None:
        fit_input_statistics(stats, eeg_tokenizer=self.eeg_tokenizer, face_norm=self.face_norm)

    def forward_features(self, eeg: Tensor | None = None, face: Tensor | None = None,
                         frame_mask: Tensor | None = None) -> Tensor:
        """The two encoders' projections side by side (B, 2 cca_dim)."""
        if eeg is None or face is None:
            raise ValueError("a deepcca model needs EEG input and face tokens")
        eeg_tokens = self.eeg_tokenizer(eeg.to(self.param_dtype()))
        face_pooled = self.face_norm(face, self.param_dtype()).mean(dim=(1, 2))
        return self.cca.project(eeg_tokens.mean(dim=1), face_pooled)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.cca.classify(features)

    def auxiliary_loss(self) -> Tensor | None:
        return self.cca.auxiliary_loss()
