"""Class labels from DEAP's 1-9 self-assessment ratings.

These rules live beside the store schema because both the pipeline (reporting class balance) and
``train`` (choosing a scheme over the segment table) use them, and ``train`` reads only through
``store_schema``.

* DEAP-2 (per dimension): ``high`` when the rating is ≥ 5, else ``low``.
* DEAP-4 (Milmer paper, eq. 5): arousal ≥ 5 is high arousal, valence ≥ 5 is high valence; classes
  in the order HAHV, HALV, LAHV, LALV. A rating of exactly 5 is *high* on both dimensions (the
  paper's released code puts v = 5, a > 5 in HALV; we follow the equation).
* DEAP-3 (per dimension): ``low`` when rating < ``low_below``, ``high`` when rating ≥ ``high_from``,
  ``medium`` between. Defaults are the paper's (§4.1: ratings 1-3 low, 4-6 medium, 7-9 high),
  4.0 and 7.0. DEAP's ratings are continuous (a slider), so the integer classes become half-open
  intervals, each edge belonging to the higher class as in eq. 5: low = [1, 4),
  medium = [4, 7), high = [7, 9] (3.99 is low, 4.0 medium, 6.99 medium, 7.0 high). Both edges
  are configurable.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

HIGH_THRESHOLD = 5.0
"""Rating at and above which a dimension counts as high (DEAP-2, DEAP-4)."""


class LabelScheme(str, Enum):
    deap2_valence = "deap2-valence"
    deap2_arousal = "deap2-arousal"
    deap3_valence = "deap3-valence"
    deap3_arousal = "deap3-arousal"
    deap4 = "deap4"


DEAP4_CLASSES = ("HAHV", "HALV", "LAHV", "LALV")
DEAP2_CLASSES = ("low", "high")
DEAP3_CLASSES = ("low", "medium", "high")


class Deap3Boundaries(BaseModel):
    """Edges of the three DEAP-3 classes on the 1-9 scale."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    low_below: float = 4.0
    high_from: float = 7.0

    @model_validator(mode="after")
    def _ordered(self) -> Deap3Boundaries:
        if not 1.0 < self.low_below < self.high_from < 9.0:
            raise ValueError(
                f"DEAP-3 boundaries must satisfy 1 < low_below < high_from < 9, got "
                f"low_below={self.low_below}, high_from={self.high_from}")
        return self


def _ratings(values: np.ndarray | list[float] | float) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("ratings contain NaN or inf")
    return arr


def deap2(ratings: np.ndarray | list[float] | float) -> np.ndarray:
    """0 = low, 1 = high (rating ≥ 5)."""
    return (_ratings(ratings) >= HIGH_THRESHOLD).astype(np.int64)


def deap3(
    ratings: np.ndarray | list[float] | float, boundaries: Deap3Boundaries = Deap3Boundaries()
) -> np.ndarray:
    """0 = low (< low_below), 1 = medium, 2 = high (≥ high_from)."""
    r = _ratings(ratings)
    return (r >= boundaries.low_below).astype(np.int64) + (r >= boundaries.high_from)


def deap4(
    valence: np.ndarray | list[float] | float, arousal: np.ndarray | list[float] | float
) -> np.ndarray:
    """Quadrant index into :data:`DEAP4_CLASSES` (HAHV=0, HALV=1, LAHV=2, LALV=3)."""
    high_v = deap2(valence)
    high_a = deap2(arousal)
    return (1 - high_a) * 2 + (1 - high_v)


def class_names(scheme: LabelScheme | str) -> tuple[str, ...]:
    scheme = LabelScheme(scheme)
    if scheme is LabelScheme.deap4:
        return DEAP4_CLASSES
    if scheme in (LabelScheme.deap3_valence, LabelScheme.deap3_arousal):
        return DEAP3_CLASSES
    return DEAP2_CLASSES


def make_labels(
    scheme: LabelScheme | str,
    *,
    valence: np.ndarray,
    arousal: np.ndarray,
    boundaries: Deap3Boundaries = Deap3Boundaries(),
) -> np.ndarray:
    """Integer class per sample for ``scheme``; names in :func:`class_names`."""
    scheme = LabelScheme(scheme)
    if scheme is LabelScheme.deap4:
        return deap4(valence, arousal)
    dimension = valence if scheme.value.endswith("valence") else arousal
    if scheme.value.startswith("deap3"):
        return deap3(dimension, boundaries)
    return deap2(dimension)
