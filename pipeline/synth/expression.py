"""Generator v2's face cue: an expression on the face, in short bursts (see ``difficulty``).

Landmarks of the head crop (``PHOTO_CROP``, photograph pixels, found by eye on a 4x enlargement):
mouth corners at (57, 128) and (98, 127), brow centres at (57, 76) and (99, 77). A frame's
expression is two signed intensities in [-1, 1]: ``mouth`` (+: corners up, a smile; -: down) and
``brow`` (+: raised; -: lowered). Each moves its landmarks vertically by intensity x
``Level.mouth_px`` / ``Level.brow_px`` through a smooth displacement field (a Gaussian bump of
sd 7 px around each mouth corner, 9 px around each brow; the mouth corners also move outward by a
third of that), applied with ``cv2.remap``. Nothing outside those bumps changes (< 1e-3 of the
displacement beyond 3 sd), so the cue stays on the face.

Timeline per trial (seeded by subject and Experiment_id): bursts start as a Poisson process of
``Level.burst_rate`` per second during playback (never in the baseline), each a half sine of
``U(*Level.burst_seconds)`` s with peak ``U(0.6, 1.0)``; mouth and brow share a burst's envelope.
The mouth's sign is the valence class (+ for valence >= 5) and the brow's the arousal class, each
flipped independently with probability ``1 - Level.agreement`` (mouth) and
``1 - Level.brow_agreement`` (brow).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from pipeline.readers import deap_format as df
from pipeline.synth.difficulty import Level
from pipeline.synth.params import STREAM_EXPRESSION, stream_rng

MOUTH_CORNERS = ((57.0, 128.0), (98.0, 127.0))
BROWS = ((57.0, 76.0), (99.0, 77.0))
_MOUTH_SD, _BROW_SD = 7.0, 9.0
_OUTWARD = 1.0 / 3.0
EXPRESSIVE = 0.25
"""A frame counts as expressive (for scoring MIL selection) when ``|intensity| > EXPRESSIVE``."""


def expression_timeline(
    *, level: Level, seed: int, subject: int, experiment_id: int, tau: np.ndarray,
    valence: float, arousal: float,
) -> np.ndarray:
    """(F, 2) signed ``mouth``, ``brow`` intensities at trial times ``tau``."""
    rng = stream_rng(seed, subject, STREAM_EXPRESSION, experiment_id)
    start = float(df.BASELINE_SECONDS)
    stop = float(tau.max(initial=start)) + 1.0 / 50
    signs = np.array([1.0 if valence >= 5 else -1.0, 1.0 if arousal >= 5 else -1.0])
    out = np.zeros((len(tau), 2))
    onset = start + rng.exponential(1.0 / level.burst_rate)
    while onset < stop:
        length = rng.uniform(*level.burst_seconds)
        peak = rng.uniform(0.6, 1.0)
        flips = np.where(rng.random(2) < [level.agreement, level.brow_agreement], 1.0, -1.0)
        inside = (tau >= onset) & (tau < onset + length)
        envelope = np.sin(np.pi * (tau[inside] - onset) / length)
        out[inside] += peak * envelope[:, None] * signs * flips
        onset += length + rng.exponential(1.0 / level.burst_rate)
    return np.clip(out, -1.0, 1.0)


@lru_cache(maxsize=2)
def _bumps(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grids and unit displacement fields of the crop: (x, y) maps, mouth (dx, dy), brow dy."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    def bump(centre: tuple[float, float], sd: float) -> np.ndarray:
        return np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sd**2))

    left, right = (bump(c, _MOUTH_SD) for c in MOUTH_CORNERS)
    mouth = np.stack([_OUTWARD * (right - left), -(left + right)])  # +: out and up
    brow = -(bump(BROWS[0], _BROW_SD) + bump(BROWS[1], _BROW_SD))  # +: up
    grid = np.stack([xx, yy])
    for array in (grid, mouth, brow):
        array.flags.writeable = False
    return grid, mouth, brow


def warp_expression(crop: np.ndarray, *, mouth_px: float, brow_px: float) -> np.ndarray:
    """``crop`` (H, W, 3) with its mouth corners moved up by ``mouth_px`` and its brows by
    ``brow_px`` (photograph pixels; negative: down); the crop itself when both are 0."""
    if mouth_px == 0.0 and brow_px == 0.0:
        return crop
    grid, mouth_field, brow_field = _bumps(*crop.shape[:2])
    shift = mouth_px * mouth_field
    shift[1] += brow_px * brow_field
    # Sample each output pixel from where it came from; the shift is smooth and small (< 8 px).
    map_x, map_y = (grid - shift).astype(np.float32)
    return cv2.remap(crop, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
