"""The per-frame ground truth a synthetic DEAP folder keeps beside its face videos, read back.

``milmer synth --difficulty ...`` writes ``synth_face_truth/sNN/sNN_trialTT.json`` for every video
(:func:`pipeline.synth.writers._write_face_truth`): frame ``i`` of the file is entry ``i`` of its
lists. Real DEAP has no such folder. When it is there, the face stage records which of each
segment's sampled frames show the planted expression (``extra["planted_frames"]``), so that
training can score how often MIL's top-K picks land on them. The truth changes no array of the
stage: it is neither hashed nor required.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.readers import deap_format as df

FACE_TRUTH_DIR = "synth_face_truth"
"""Under a synthetic DEAP folder: per video ``sNN/sNN_trialTT.json``."""


def face_truth_dir(deap: Path | None) -> Path | None:
    """The truth folder of a DEAP folder, or ``None`` (real DEAP)."""
    if deap is None:
        return None
    path = Path(deap) / FACE_TRUTH_DIR
    return path if path.is_dir() else None


def expressive_frames(path: Path) -> np.ndarray:
    """(frames,) bool: the frames of one video that show the planted expression."""
    try:
        content = json.loads(Path(path).read_text())
        return np.asarray(content["expressive"], dtype=bool).reshape(-1)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a readable face-truth file ({err})") from err


def planted_frames(
    truth_dir: Path, *, subject: int, files: Sequence[str | None], frame_index: np.ndarray,
) -> tuple[list[list[int]] | None, str | None]:
    """Per segment, the positions (0-9) of its sampled frames that are expressive; ``None`` and the
    reason when a used video has no truth file. ``files[i]`` names segment ``i``'s video (``None``:
    no usable video, no planted frames); ``frame_index`` is the stage's (segments, frames) array."""
    cache: dict[str, np.ndarray] = {}
    out: list[list[int]] = []
    for file, indices in zip(files, np.asarray(frame_index)):
        if file is None:
            out.append([])
            continue
        if file not in cache:
            path = truth_dir / df.subject_tag(subject) / f"{Path(file).stem}.json"
            if not path.is_file():
                return None, f"{path}: no face-truth file for {file}"
            try:
                cache[file] = expressive_frames(path)
            except ValueError as err:
                return None, str(err)
        truth = cache[file]
        if indices.max() >= len(truth):
            return None, f"{file}: its truth file lists {len(truth)} frames, frame {indices.max()} was sampled"
        out.append([int(k) for k in np.flatnonzero(truth[indices])])
    return out, None
