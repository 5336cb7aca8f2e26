"""What each EEG subject-stage computes, from input arrays to the arrays the store schema names.

Pure functions (no Zarr, no Prefect): ``flows`` reads a stage's inputs through ``store_schema``,
calls one of these, and hands the result to the store's runner. Each returns ``(arrays, extra)``:
``arrays`` maps the schema's array names to numpy arrays, ``extra`` is small JSON metadata kept in
the commit record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from pipeline import deap_format as fmt
from pipeline.bdf import BdfRecording
from pipeline.deap import SubjectRecording
from pipeline.eeg import FilterIcaParams, SegmentParams, filter_and_ica, segment_trials

INGEST_CODE_VERSION = "1"

Arrays = dict[str, np.ndarray]
Extra = dict[str, Any]

_EOG_ROWS = [fmt.ALL_CHANNELS.index(name) for name in fmt.EOG_CHANNELS]


class IngestParams(BaseModel):
    """Settings of the ingest stage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["preprocessed", "original"] = "preprocessed"
    """``preprocessed``: ``data_preprocessed_python/sNN.dat`` (128 Hz, DEAP's own 4-45 Hz band-pass
    and EOG cleaning). ``original``: ``data_original/sNN.bdf`` (512 Hz raw), read by
    :mod:`pipeline.bdf` into the same shapes (common average, 128 Hz, Geneva order)."""


def ingest(*, recording: SubjectRecording | BdfRecording) -> tuple[Arrays, Extra]:
    """The subject's EEG, EOG, ratings and trial pairing, trials in ``Experiment_id`` order."""
    if isinstance(recording, BdfRecording):
        return _ingest_bdf(recording)
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
        "trial_seconds": dat.trial_seconds,
        "source": "preprocessed",
    }
    return arrays, extra


def _ingest_bdf(recording: BdfRecording) -> tuple[Arrays, Extra]:
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


def clean_eeg(
    *, eeg: np.ndarray, eog: np.ndarray, sfreq: float, params: FilterIcaParams,
    progress: Callable[[str], None] | None = None,
) -> tuple[Arrays, Extra]:
    """Band-pass + ICA on the subject's continuous data; records what was excluded and why."""
    result = filter_and_ica(eeg=eeg, eog=eog, sfreq=sfreq, params=params, progress=progress)
    arrays = {
        "eeg": result.cleaned,
        "ica_excluded": np.asarray(result.excluded, dtype=np.int32),
        "ica_scores": result.scores.astype(np.float32),
    }
    extra = {
        "ica_excluded": [int(k) for k in result.excluded],
        "eog_reference": list(result.eog_reference),
        "n_components": int(result.n_components),
        "ica_converged": bool(result.converged),
        "ica_n_iter": int(result.n_iter),
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
    }
    return arrays, extra


def segment(
    *,
    eeg: np.ndarray,
    ratings: np.ndarray,
    experiment_id: np.ndarray,
    presentation_trial: np.ndarray,
    sfreq: float,
    params: SegmentParams,
) -> tuple[Arrays, Extra]:
    """3 s windows after the baseline, with the segment table (one row per window)."""
    cut = segment_trials(eeg=eeg, sfreq=sfreq, params=params)
    trial = cut.trial_index
    arrays = {
        "eeg": cut.segments,
        "trial_index": trial.astype(np.int32),
        "experiment_id": experiment_id[trial].astype(np.int32),
        "presentation_trial": presentation_trial[trial].astype(np.int32),
        "segment_index": cut.segment_index.astype(np.int32),
        "start_s": cut.start_s.astype(np.float32),
        **{name: ratings[trial, column].astype(np.float64)
           for column, name in enumerate(fmt.RATING_NAMES)},
    }
    extra = {"n_segments": int(len(trial)), "segments_per_trial": int(np.bincount(trial).max(initial=0))}
    return arrays, extra
