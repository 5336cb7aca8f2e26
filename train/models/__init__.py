"""The heads trained on cached tokens: :class:`Milmer` (fusion) and its baselines."""

from __future__ import annotations

from train.config import ModelConfig
from train.models.milmer import (
    Balancer,
    EegTokenizer,
    FrameScorer,
    MilPooling,
    Milmer,
    count_parameters,
)


def build_model(config: ModelConfig, *, num_classes: int) -> Milmer:
    """A model whose constructor arguments are exactly ``config``'s fields."""
    return Milmer(num_classes=num_classes, **config.model_dump())


__all__ = ["Balancer", "EegTokenizer", "FrameScorer", "MilPooling", "Milmer", "build_model",
           "count_parameters"]
