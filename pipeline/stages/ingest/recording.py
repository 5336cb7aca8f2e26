"""The ingest stage: one subject's EEG, EOG, ratings and trial pairing, from either DEAP source.

``preprocessed`` reads ``data_preprocessed_python/sNN.dat`` (128 Hz, DEAP's own 4-45 Hz band-pass
and EOG cleaning), or its MATLAB copy ``data_preprocessed_matlab/sNN.mat`` where there is no
``.dat`` (or when asked), through :mod:`pipeline.readers.deap`; ``original`` reads ``data_original/sNN.bdf`` (512 Hz
raw) through :mod:`pipeline.readers.bdf` into the same shapes (common average, 128 Hz, Geneva order). Both
pair trials through the subject's rows of ``participant_ratings.csv``.

:func:`ingest_inputs` names what the stage reads, cheaply (file stats and this subject's ratings
rows), for the fingerprint; :func:`ingest` loads and returns the schema's arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.readers import deap_format as fmt
from pipeline.readers.bdf import BdfRecording, load_bdf_subject
from pipeline.readers.deap import (
    DeapLayout,
    SubjectRecording,
    find_layout,
    load_ratings,
    load_subject,
    preprocessed_file,
    subjects_in,
)
from pipeline.errors import DeapInputError
from pipeline.stages.ingest.params import IngestParams, Source
from store_schema.contract.fingerprint import digest, file_fingerprint

_EOG_ROWS = [fmt.ALL_CHANNELS.index(name) for name in fmt.EOG_CHANNELS]


def source_file(layout: DeapLayout, subject: int, params: IngestParams) -> Path:
    """The subject's recording for ``params``; a missing folder or file names what was looked for."""
    if params.source == "preprocessed":
        if layout.preprocessed_dir is None and layout.matlab_dir is None:
            raise DeapInputError(layout.root, f"no {fmt.PREPROCESSED_DIR}/ (nor "
                                 f"{fmt.PREPROCESSED_MATLAB_DIR}/) folder found (source 'preprocessed')")
        path = preprocessed_file(layout, subject, preprocessed_format=params.preprocessed_format)
        if path is None:
            folder = layout.preprocessed_dir or layout.matlab_dir
            name = (fmt.mat_name(subject) if params.preprocessed_format == "mat"
                    or layout.preprocessed_dir is None else fmt.dat_name(subject))
            raise DeapInputError(folder / name, "file not found (unknown subject?)", subject=subject)
        return path
    if layout.original_dir is None:
        raise DeapInputError(layout.root, f"no {fmt.ORIGINAL_DIR}/ folder found (source 'original')")
    path = layout.original_dir / fmt.bdf_name(subject)
    if not path.is_file():
        raise DeapInputError(path, "file not found (unknown subject?)", subject=subject)
    return path


def ingest_inputs(*, deap: Path, subject: int, params: IngestParams,
                  content_hash: bool = False) -> dict[str, str]:
    """The recording file (size+mtime, or content) and this subject's ratings rows.

    Only this subject's rows count: editing another participant's ratings changes nothing here.
    A subject whose rows are broken is named by its error, so fixing them recomputes it.
    """
    layout = find_layout(deap)
    path = source_file(layout, subject, params)
    ratings = load_ratings(_ratings_csv(layout))
    rows = ratings.by_subject.get(subject) or ratings.subject_errors.get(subject, "absent")
    kind = "bdf" if params.source == "original" else path.suffix.lower().lstrip(".")
    return {kind: file_fingerprint(path, content=content_hash),
            "ratings": digest(rows if isinstance(rows, str) else [r.model_dump() for r in rows])}


def load_recording(*, deap: Path, subject: int, params: IngestParams,
                   bdf_sfreq: int = fmt.SFREQ) -> SubjectRecording | BdfRecording:
    """Load and check one subject as ``params`` say; raise :class:`DeapInputError` naming the file."""
    layout = find_layout(deap)
    if params.source == "preprocessed":
        return load_subject(layout, subject, check_videos=False,
                            preprocessed_format=params.preprocessed_format)
    ratings = load_ratings(_ratings_csv(layout))
    if subject in ratings.subject_errors:
        raise DeapInputError(ratings.path, f"participant {subject}: "
                             f"{ratings.subject_errors[subject]}", subject=subject)
    if subject not in ratings.by_subject:
        raise DeapInputError(ratings.path, f"participant {subject} has no rows", subject=subject)
    return load_bdf_subject(source_file(layout, subject, params), subject=subject,
                            rows=ratings.by_subject[subject], out_sfreq=bdf_sfreq)


def high_rate_trials(*, deap: Path, subject: int, sfreq: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The subject's raw BDF trials as ingest cuts them, resampled to ``sfreq`` instead of 128 Hz:
    ``(eeg, eog, sfreq)`` for a stage that needs more bandwidth (ICLabel). Read again from the
    file rather than stored: its size and mtime (or content) are already in the ingest
    fingerprint, and only this option needs it."""
    recording = load_recording(deap=deap, subject=subject, params=IngestParams(source="original"),
                               bdf_sfreq=sfreq)
    assert isinstance(recording, BdfRecording)
    return recording.eeg, recording.eog, float(recording.sfreq)


def ingest(*, deap: Path, subject: int, params: IngestParams,
           progress: Callable[[str], None] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The ingest stage: the subject's arrays, trials in ``Experiment_id`` order."""
    recording = load_recording(deap=deap, subject=subject, params=params)
    if isinstance(recording, BdfRecording):
        return _bdf_arrays(recording)
    return _dat_arrays(recording)


def _ratings_csv(layout: DeapLayout) -> Path:
    if layout.ratings_csv is None:
        raise DeapInputError(layout.root, f"no {fmt.METADATA_DIR}/{fmt.RATINGS_FILE} found")
    return layout.ratings_csv


def _dat_arrays(recording: SubjectRecording) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    dat = recording.dat
    trials = recording.info.trials
    arrays = {
        "eeg": dat.data[:, : len(fmt.EEG_CHANNELS)].astype(np.float32),
        "eog": dat.data[:, _EOG_ROWS].astype(np.float32),
        "ratings": dat.labels.astype(np.float64),
        "experiment_id": np.array([t.experiment_id for t in trials], dtype=np.int32),
        "presentation_trial": np.array([t.trial for t in trials], dtype=np.int32),
    }
    extra = {
        "sfreq": fmt.SFREQ,
        "channels": list(fmt.EEG_CHANNELS),
        "eog_channels": list(fmt.EOG_CHANNELS),
        "dat_file": dat.path.name,
        "preprocessed_format": recording.info.preprocessed_format,
        "trial_seconds": dat.trial_seconds,
        "source": "preprocessed",
    }
    return arrays, extra


def _bdf_arrays(recording: BdfRecording) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays = {
        "eeg": recording.eeg.astype(np.float32),
        "eog": recording.eog.astype(np.float32),
        "ratings": recording.ratings.astype(np.float64),
        "experiment_id": recording.experiment_id.astype(np.int32),
        "presentation_trial": recording.presentation_trial.astype(np.int32),
    }
    extra = {
        "sfreq": recording.sfreq,
        "channels": list(fmt.EEG_CHANNELS),
        "eog_channels": list(fmt.EOG_CHANNELS),
        "bdf_file": recording.path.name,
        "trial_seconds": recording.trial_seconds,
        "source": "original",
        "bdf_channel_order": recording.channel_order,
        "status_channel": recording.status_channel,
        "reference": "common average",
        "playback_onsets_s": [round(float(t), 4) for t in recording.playback_onsets_s],
    }
    return arrays, extra


def requested_subjects(deap: Path, subjects: list[int] | None, *,
                       source: Source = "preprocessed") -> list[int]:
    """``subjects``, else every subject with a recording for ``source``; none is an error."""
    layout = find_layout(deap)
    found = subjects or subjects_in(layout, source=source)
    if not found:
        raise DeapInputError(layout.root, f"no {_recording_kind(source)} files found: "
                             "nothing to preprocess")
    return found


def check_deap_folder(deap: Path, subjects: list[int] | None, *, source: Source,
                      needs_ratings: bool) -> None:
    """Folder-wide problems, before any work: no DEAP layout, nothing to preprocess for
    ``source``, and (when ingest runs) a missing or unreadable ``participant_ratings.csv``.
    One subject's bad rows are that subject's failure, at ingest."""
    layout = find_layout(deap)
    if not subjects:
        requested_subjects(deap, None, source=source)
    if not needs_ratings:
        return
    if layout.ratings_csv is None:
        raise DeapInputError(layout.root, f"no {fmt.METADATA_DIR}/{fmt.RATINGS_FILE} found; "
                             "ingest needs it (ratings, and the trial-video pairing)")
    load_ratings(layout.ratings_csv)


def _recording_kind(source: Source) -> str:
    return "sNN.bdf" if source == "original" else "sNN.dat"
