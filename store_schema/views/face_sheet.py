"""What ``milmer store faces`` shows: a subject's face crops and their segment labels, read from
the committed ``segment`` and ``faces`` stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from store_schema.errors import StoreError
from store_schema.contract.layout import Stage
from store_schema.engine.store import FeatureStore


@dataclass(frozen=True)
class FaceSheet:
    """The selected segments of one subject, one row each."""

    subject: int
    n_segments: int
    """Segments the subject has (the sheet shows ``len(labels)`` of them)."""
    crops: np.ndarray
    """(rows, frames, H, W, 3) uint8."""
    detected: np.ndarray
    has_video: np.ndarray
    labels: list[str]
    """``E07 seg 3\\ntrial12.avi\\nt=9-12 s`` per row: Experiment_id, segment, video, window."""
    detected_fraction: float

    @property
    def rows(self) -> int:
        return len(self.labels)


def read_face_sheet(
    store: FeatureStore, subject: int, *, select: Callable[[np.ndarray], np.ndarray],
) -> FaceSheet:
    """The segments ``select(experiment_id)`` picks (positions into the segment table).

    Raises :class:`StoreError` when the subject has no committed faces stage. An empty selection
    gives a sheet with no rows (the caller says why it chose none).
    """
    record = store.record(subject, Stage.faces)
    if record is None:
        raise StoreError(f"{store.url}: subject {subject} has no committed faces stage; run "
                         "`milmer preprocess --stages faces` first")
    experiment = store.read(subject, Stage.segment, "experiment_id")
    rows = np.asarray(select(experiment), dtype=np.int64)
    segment_index = store.read(subject, Stage.segment, "segment_index")[rows]
    presentation = store.read(subject, Stage.segment, "presentation_trial")[rows]
    start_s = store.read(subject, Stage.segment, "start_s")[rows]
    crops_array = store.array(subject, Stage.faces, "crops")
    crops = (np.stack([crops_array[int(r)] for r in rows]) if rows.size
             else np.zeros((0, *crops_array.shape[1:]), dtype=crops_array.dtype))
    window = record.extra.get("window_s", 3)
    labels = [f"E{experiment[r]:02d} seg {k}\ntrial{p:02d}.avi\nt={t:.0f}-{t + window:.0f} s"
              for r, k, p, t in zip(rows, segment_index, presentation, start_s)]
    return FaceSheet(
        subject=subject, n_segments=len(experiment), crops=crops,
        detected=store.read(subject, Stage.faces, "detected")[rows],
        has_video=store.read(subject, Stage.faces, "has_video")[rows], labels=labels,
        detected_fraction=float(record.extra.get("detected_fraction", 0)))
