"""A face-expression image folder drawn by the synthetic face (FER-style): what `milmer finetune`
reads, to tune a Swin on the very expressions generator v2 plants in its videos.

Four classes, the signs of the two intensities :mod:`pipeline.synth.expression` plants: the mouth
(corners up: a smile, +; down, -: the valence cue) and the brows (raised +, lowered -: the
arousal cue). Each image is the synthetic head with one expression at a peak intensity of
``U(0.6, 1.0)`` times the level's pixel displacement, under the videos' own nuisances drawn
afresh (brightness, contrast, tint, a small shift, scale and rotation), saved as PNG in the layout
Kaggle's FER2013 and RAF-DB exports use: ``train/<class>/``, ``val/<class>/``, ``test/<class>/``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.synth.difficulty import LEVELS, Difficulty
from pipeline.synth.expression import warp_expression
from pipeline.synth.face_video import colour_lut, head_photo

EXPRESSION_CLASSES: dict[str, tuple[float, float]] = {
    "smile-brows-raised": (1.0, 1.0),
    "smile-brows-lowered": (1.0, -1.0),
    "frown-brows-raised": (-1.0, 1.0),
    "frown-brows-lowered": (-1.0, -1.0),
}
"""Class name -> signs of (mouth, brow) intensity."""


def expression_image(*, mouth: float, brow: float, difficulty: Difficulty,
                     rng: np.random.Generator) -> np.ndarray:
    """One RGB uint8 image of the synthetic head with intensities ``mouth``, ``brow`` in [-1, 1]."""
    level = LEVELS[difficulty]
    crop, _ = head_photo()
    face = warp_expression(crop, mouth_px=mouth * level.mouth_px, brow_px=brow * level.brow_px)
    h, w = face.shape[:2]
    scale = rng.uniform(0.9, 1.1)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-6, 6), scale)
    matrix[:, 2] += rng.uniform(-0.05, 0.05, 2) * (w, h)
    face = cv2.warpAffine(face, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    lut = colour_lut(rng.uniform(0.75, 1.25), rng.uniform(0.8, 1.2), rng.uniform(0.85, 1.15, 3))
    return cv2.cvtColor(cv2.LUT(face, lut), cv2.COLOR_BGR2RGB)


def write_expression_folder(out: Path | str, *, train_per_class: int = 100, val_per_class: int = 25,
                            test_per_class: int = 25, difficulty: Difficulty = "easy",
                            seed: int = 0) -> dict[str, int]:
    """Write the folder; return the number of images per split. The same seed gives the same
    files."""
    out = Path(out)
    rng = np.random.default_rng([seed, 7919])
    counts = {"train": train_per_class, "val": val_per_class, "test": test_per_class}
    for split, per_class in counts.items():
        for name, (mouth_sign, brow_sign) in EXPRESSION_CLASSES.items():
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                peak = rng.uniform(0.6, 1.0, 2)
                image = expression_image(mouth=mouth_sign * peak[0], brow=brow_sign * peak[1],
                                         difficulty=difficulty, rng=rng)
                cv2.imwrite(str(folder / f"{k:04d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return {split: n * len(EXPRESSION_CLASSES) for split, n in counts.items()}
