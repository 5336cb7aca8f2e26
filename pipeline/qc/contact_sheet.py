"""A contact sheet of face crops, for a person to check the face stage by eye.

One row per segment, its ``frames`` crops left to right, a label on the left. A frame without a
detection (its box borrowed from a neighbour or the centre-crop fallback) is outlined in red; a
segment whose video was unusable is a grey row marked "no video".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

UNDETECTED_RGB = (230, 30, 30)
BACKGROUND_RGB = (24, 24, 24)
NO_VIDEO_RGB = (150, 150, 150)
TEXT_RGB = (235, 235, 235)


def pick_rows(n_segments: int, max_rows: int) -> np.ndarray:
    """Up to ``max_rows`` segment positions spread evenly over ``n_segments`` (all if fewer)."""
    if n_segments <= max_rows:
        return np.arange(n_segments)
    return np.unique(np.linspace(0, n_segments - 1, max_rows).round().astype(np.int64))


def sheet_rows(experiment_id: np.ndarray, *, trial: int | None, max_rows: int) -> np.ndarray:
    """Segment positions to show: those of ``trial`` (an Experiment_id) or all, spread evenly.

    An empty result means the subject has no segment of that trial.
    """
    positions = (np.flatnonzero(experiment_id == trial) if trial is not None
                 else np.arange(len(experiment_id)))
    return positions[pick_rows(len(positions), max(1, max_rows))] if positions.size else positions


def contact_sheet(
    *,
    crops: np.ndarray,
    detected: np.ndarray,
    has_video: np.ndarray,
    labels: Sequence[str],
    thumb: int = 112,
    title: str | None = None,
) -> np.ndarray:
    """RGB uint8 image: ``crops`` (rows, frames, H, W, 3) as a grid, undetected frames outlined."""
    rows, frames = crops.shape[:2]
    gap, label_w, border = 4, 150, max(2, thumb // 40)
    header = 28 if title else 0
    height = header + gap + rows * (thumb + gap)
    width = label_w + frames * (thumb + gap) + gap
    sheet = np.empty((max(height, header + 1), width, 3), dtype=np.uint8)
    sheet[:] = BACKGROUND_RGB
    if title:
        cv2.putText(sheet, title, (gap, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, TEXT_RGB, 1, cv2.LINE_AA)
    for r in range(rows):
        y = header + gap + r * (thumb + gap)
        for i, line in enumerate(str(labels[r]).split("\n")):
            cv2.putText(sheet, line, (gap, y + 20 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        TEXT_RGB, 1, cv2.LINE_AA)
        if not has_video[r]:
            cv2.putText(sheet, "no video", (label_w, y + thumb // 2), cv2.FONT_HERSHEY_SIMPLEX,
                        0.6, NO_VIDEO_RGB, 1, cv2.LINE_AA)
            continue
        for f in range(frames):
            x = label_w + f * (thumb + gap)
            tile = cv2.resize(crops[r, f], (thumb, thumb), interpolation=cv2.INTER_AREA)
            if not detected[r, f]:
                cv2.rectangle(tile, (0, 0), (thumb - 1, thumb - 1), UNDETECTED_RGB, border)
            sheet[y : y + thumb, x : x + thumb] = tile
    return sheet


def write_png(path: Path | str, rgb: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write the PNG")
    return path
