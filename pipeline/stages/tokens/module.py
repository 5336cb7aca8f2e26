"""The tokens stage's forward as a module: uint8 crops -> final-stage Swin-tiny tokens.

One definition of what a crop goes through, shared by the stage (:class:`~.extract.TokenExtractor`,
under ``inference_mode``) and by training with the backbone in the loop (``milmer train
--finetune-backbone``, with gradients), so that tokens extracted later with the tuned weights
are the tokens the heads were trained on:

1. NHWC uint8 -> NCHW float, ``(pixel - mean / scale) * (scale / std)`` with the weights' own
   normalisation (:class:`~pipeline.weights.swin_source.Normalisation`), channels_last;
2. ``forward_features`` (after the final LayerNorm): (N, 7, 7, 768);
3. row-major patches: (N, 49, 768).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.weights.swin_source import Normalisation


def normalisation_tensors(normalisation: Normalisation, device: torch.device | str = "cpu"
                          ) -> tuple[Tensor, Tensor]:
    """``(mean / scale, scale / std)`` as (1, 3, 1, 1) float32 tensors."""
    n = normalisation
    mean = torch.tensor([m / n.scale for m in n.mean], device=device).view(1, 3, 1, 1)
    inv_std = torch.tensor([n.scale / s for s in n.std], device=device).view(1, 3, 1, 1)
    return mean, inv_std


def normalise_crops(crops: Tensor, mean: Tensor, inv_std: Tensor) -> Tensor:
    """(N, 224, 224, 3) uint8 on the model's device -> the backbone's (N, 3, 224, 224) float
    input, channels_last (the NCHW view of NHWC memory already has its strides)."""
    x = crops.permute(0, 3, 1, 2).float()
    x = (x - mean) * inv_std
    return x.contiguous(memory_format=torch.channels_last)


class CropTokens(nn.Module):
    """``backbone`` (a headless timm Swin) behind the stage's normalisation: ``forward(crops)``
    takes (N, 224, 224, 3) uint8 and returns (N, 49, 768) tokens (the backbone's dtype, or the
    autocast's). The normalisation travels as buffers; ``backbone`` keeps timm's keys."""

    def __init__(self, backbone: nn.Module, normalisation: Normalisation) -> None:
        super().__init__()
        self.backbone = backbone
        self.normalisation = normalisation
        mean, inv_std = normalisation_tensors(normalisation)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("inv_std", inv_std, persistent=False)

    def forward(self, crops: Tensor) -> Tensor:
        features = self.backbone.forward_features(normalise_crops(crops, self.mean, self.inv_std))
        return features.flatten(1, 2)
