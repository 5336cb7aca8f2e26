"""The segment stage: fixed-length windows of cleaned EEG after each trial's baseline.

:func:`segment_trials` (:class:`SegmentParams` → :class:`Segments`) drops the 3 s pre-trial
baseline and cuts windows of ``window_s`` every ``stride_s``; :func:`segment` is the stage function
the stage table calls: the windows plus the segment table (one row per window).

The Milmer paper's released code reshapes ``(1, 32, 7680)`` trials with ``reshape(-1, 32).T``,
which interleaves the samples of all channels; here channels are only ever indexed along their
own axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.readers import deap_format as fmt
from pipeline.errors import ParameterError
from pipeline.stages.segment.params import SegmentParams

@dataclass(frozen=True)
class Segments:
    segments: np.ndarray
    """(n_seg, C, window_samples) float32, channels in the input's order."""
    trial_index: np.ndarray
    """(n_seg,) int64, 0-based index into the input's trial axis."""
    segment_index: np.ndarray
    """(n_seg,) int64, 0-based position of the window within its trial."""
    start_s: np.ndarray
    """(n_seg,) float64, window start in seconds after playback began (after the baseline)."""


def _whole_samples(seconds: float, sfreq: float, what: str) -> int:
    samples = seconds * sfreq
    if abs(samples - round(samples)) > 1e-6:
        raise ParameterError(
            f"{what}: {seconds} s at {sfreq} Hz is {samples:.3f} samples, not a whole number; "
            f"use a multiple of 1/{sfreq} s")
    return round(samples)


def segment_trials(*, eeg: np.ndarray, sfreq: float, params: SegmentParams) -> Segments:
    """Cut every trial of ``eeg`` (trials, channels, samples) into windows after its baseline.

    Windows start at ``k * stride_s`` after playback, ``k = 0 .. min(max_segments, floor((trial_s -
    window_s) / stride_s) + 1) - 1``, where ``trial_s`` is the trial's length after the baseline.
    """
    if eeg.ndim != 3 or 0 in eeg.shape:
        raise ValueError(
            f"eeg must be (trials, channels, samples) with data, got shape {eeg.shape}")
    if not sfreq > 0:
        raise ValueError(f"sfreq must be positive, got {sfreq}")
    baseline = _whole_samples(fmt.BASELINE_SECONDS, sfreq, "baseline")
    window = _whole_samples(params.window_s, sfreq, "SegmentParams.window_s")
    stride = _whole_samples(params.stride_s, sfreq, "SegmentParams.stride_s")
    n_trials, n_channels, n_samples = eeg.shape
    trial_samples = n_samples - baseline
    if trial_samples <= 0:
        raise ValueError(
            f"trials have {n_samples} samples ({n_samples / sfreq:.2f} s), no more than the "
            f"{fmt.BASELINE_SECONDS} s pre-trial baseline ({baseline} samples): nothing to segment")
    if window > trial_samples:
        raise ParameterError(
            f"SegmentParams.window_s: a {params.window_s} s window does not fit in a "
            f"{trial_samples / sfreq:.2f} s trial (after the {fmt.BASELINE_SECONDS} s baseline); "
            "lower window_s")

    n_per_trial = (trial_samples - window) // stride + 1
    if params.max_segments is not None:
        n_per_trial = min(n_per_trial, params.max_segments)

    data = eeg
    if params.baseline_correction:
        data = eeg - eeg[:, :, :baseline].mean(axis=2, keepdims=True, dtype=np.float64)

    k = np.arange(n_per_trial)
    # (window starts, window offsets) index the time axis only: data[:, :, idx] is
    # (T, C, K, W); moving K next to T and merging those two keeps every channel row intact.
    idx = baseline + k[:, None] * stride + np.arange(window)[None, :]
    segments = data[:, :, idx].transpose(0, 2, 1, 3).reshape(-1, n_channels, window)
    return Segments(
        segments=segments.astype(np.float32, copy=False),
        trial_index=np.repeat(np.arange(n_trials, dtype=np.int64), n_per_trial),
        segment_index=np.tile(k.astype(np.int64), n_trials),
        start_s=np.tile(k * stride / sfreq, n_trials),
    )


def segment(
    *,
    eeg: np.ndarray,
    ratings: np.ndarray,
    experiment_id: np.ndarray,
    presentation_trial: np.ndarray,
    sfreq: float,
    params: SegmentParams,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The segment stage: 3 s windows after the baseline, with the segment table (one row per
    window: trial, video, position, start and the trial's ratings)."""
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
