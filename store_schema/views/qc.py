"""What the QC report of one subject shows, read from its committed stages (``milmer report``).

:func:`read_subject_qc` gathers it; :mod:`pipeline.qc.report` draws it. A stage that is not
committed is simply absent (its sections say so); only the stage records and the subject's
ingest are required. Large arrays are reduced here, a chunk at a time: a full DEAP subject has
800 segments of 10 crops and 10 x 49 x 768 tokens, which the report never needs whole.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from store_schema.errors import StoreError
from store_schema.contract.layout import Stage
from store_schema.engine.store import FeatureStore, StageRecord

STRIP_SEGMENTS = 8
"""Segments in the face strip: one per trial, spread over the session (ten frames each)."""


@dataclass(frozen=True)
class FaceQc:
    detected: np.ndarray
    """(segments, frames) bool."""
    has_video: np.ndarray
    trial_index: np.ndarray
    """(segments,) 0-based .dat trial of each segment."""
    experiment_id: np.ndarray
    strip_rows: np.ndarray
    """Segment positions shown in the strip."""
    strip_crops: np.ndarray
    """(len(strip_rows), frames, H, W, 3) uint8."""
    strip_labels: list[str]
    crop_max: np.ndarray
    """(segments, frames) uint8: the brightest value of each crop (0: all black)."""
    crop_duplicate: np.ndarray
    """(segments, frames) bool: the crop equals the segment's previous frame byte for byte."""


@dataclass(frozen=True)
class SubjectQc:
    """One subject's committed stages, as the report needs them (numpy arrays and records)."""

    subject: int
    records: dict[Stage, StageRecord]
    """Every committed stage of the subject."""
    sfreq: float
    ingest_eeg: np.ndarray
    """(trials, 32, samples) µV, before any filter."""
    ingest_eog: np.ndarray
    experiment_id: np.ndarray
    eeg: dict[str, np.ndarray] = field(default_factory=dict)
    """The eeg stage's arrays by name (empty when it is not committed)."""
    faces: FaceQc | None = None
    token_norms: np.ndarray | None = None
    """(segments, frames) float32: L2 norm of each frame's 49 x 768 tokens."""


def read_subject_qc(store: FeatureStore, subject: int) -> SubjectQc:
    """Raises :class:`StoreError` when the subject has no committed ingest stage."""
    records = {stage: record for stage in Stage
               if (record := store.record(subject, stage)) is not None}
    if Stage.ingest not in records:
        raise StoreError(f"{store.url}: subject {subject} has no committed ingest stage; run "
                         "`milmer preprocess` for it first")
    eeg = {}
    if Stage.eeg in records:
        eeg = {spec: store.read(subject, Stage.eeg, spec)
               for spec in ("eeg", "ica_excluded", "ica_scores", "ica_flagged", "ica_mixing",
                            "ica_unmixing", "ica_channel_mean", "ica_label_probabilities")}
    faces = _read_faces(store, subject) if Stage.faces in records else None
    norms = _token_norms(store, subject) if Stage.tokens in records else None
    return SubjectQc(
        subject=subject, records=records, sfreq=float(records[Stage.ingest].extra["sfreq"]),
        ingest_eeg=store.read(subject, Stage.ingest, "eeg"),
        ingest_eog=store.read(subject, Stage.ingest, "eog"),
        experiment_id=store.read(subject, Stage.ingest, "experiment_id"),
        eeg=eeg, faces=faces, token_norms=norms)


def _read_faces(store: FeatureStore, subject: int) -> FaceQc:
    trial_index = store.read(subject, Stage.segment, "trial_index")
    experiment = store.read(subject, Stage.segment, "experiment_id")
    segment_index = store.read(subject, Stage.segment, "segment_index")
    start_s = store.read(subject, Stage.segment, "start_s")
    crops = store.array(subject, Stage.faces, "crops")
    n_segments, n_frames = crops.shape[:2]
    crop_max = np.zeros((n_segments, n_frames), dtype=np.uint8)
    duplicate = np.zeros((n_segments, n_frames), dtype=bool)
    for s in range(n_segments):  # one chunk (segment) at a time
        segment = crops[s]
        crop_max[s] = segment.reshape(n_frames, -1).max(axis=1)
        digests = [hashlib.blake2b(frame.tobytes(), digest_size=16).digest() for frame in segment]
        duplicate[s, 1:] = [a == b for a, b in zip(digests[1:], digests[:-1])]
    # The middle segment of evenly spaced trials: one look at each part of the session.
    trials = np.unique(trial_index)
    shown = trials[np.unique(np.linspace(0, len(trials) - 1, min(STRIP_SEGMENTS, len(trials)))
                             .round().astype(int))] if len(trials) else trials
    rows = np.array([np.flatnonzero(trial_index == t)[len(np.flatnonzero(trial_index == t)) // 2]
                     for t in shown], dtype=np.int64)
    window = store.record(subject, Stage.faces).extra.get("window_s", 3)
    return FaceQc(
        detected=store.read(subject, Stage.faces, "detected"),
        has_video=store.read(subject, Stage.faces, "has_video"),
        trial_index=trial_index, experiment_id=experiment, strip_rows=rows,
        strip_crops=(np.stack([crops[int(r)] for r in rows]) if rows.size
                     else np.zeros((0, *crops.shape[1:]), dtype=np.uint8)),
        strip_labels=[f"E{experiment[r]:02d} seg {segment_index[r]}\nt={start_s[r]:.0f}-"
                      f"{start_s[r] + window:.0f} s" for r in rows],
        crop_max=crop_max, crop_duplicate=duplicate)


def _token_norms(store: FeatureStore, subject: int) -> np.ndarray:
    tokens = store.array(subject, Stage.tokens, "tokens")
    norms = np.zeros(tokens.shape[:2], dtype=np.float32)
    for s in range(tokens.shape[0]):
        frames = np.asarray(tokens[s], dtype=np.float32)
        norms[s] = np.sqrt((frames.reshape(len(frames), -1) ** 2).sum(axis=1))
    return norms
