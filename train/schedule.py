"""The epoch schedule and the epoch choice: pure functions of the epoch and a fold's history.

The choice looks only at validation figures; the test fold is never read here.
"""

from __future__ import annotations

import math
from typing import Any


def cosine_factor(epoch: int, epochs: int, final_factor: float) -> float:
    """LR multiplier of epoch ``epoch`` (0-based): cosine from 1 down towards ``final_factor``,
    the paper's ``((1 + cos(e π / E)) / 2) (1 - lrf) + lrf``."""
    return ((1 + math.cos(epoch * math.pi / max(1, epochs))) / 2) * (1 - final_factor) + final_factor


def select_epoch(history: list[dict[str, Any]], selection: str) -> int | None:
    """The chosen epoch (1-based) among the rows evaluated on validation, or ``None`` if none was.

    ``val_accuracy``: highest accuracy, ties to the lower loss, then to the earlier epoch;
    ``val_loss``: lowest loss, ties to the earlier epoch. Test figures are never looked at.
    """
    rows = [r for r in history if r.get("val_loss") is not None]
    if not rows:
        return None
    if selection == "val_loss":
        key = lambda r: (r["val_loss"], r["epoch"])  # noqa: E731
    else:
        key = lambda r: (-r["val_accuracy"], r["val_loss"], r["epoch"])  # noqa: E731
    return int(min(rows, key=key)["epoch"])


def early_stop(history: list[dict[str, Any]], selection: str, patience: int | None) -> bool:
    """Whether a fold stops after the last row of ``history``: ``patience`` epochs have passed
    since the epoch :func:`select_epoch` chooses (checked at epochs evaluated on validation)."""
    if patience is None or not history or history[-1].get("val_loss") is None:
        return False
    best = select_epoch(history, selection)
    return best is not None and history[-1]["epoch"] - best >= patience
