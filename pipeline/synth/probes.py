"""Simple probes that state what the planted cues allow: ceilings, and the absence of shortcuts.

Each probe is a logistic regression (scikit-learn, standardised features, C = 1) scored by
stratified cross-validation in which whole trials are held out (the ``trial`` protocol: no window
of a test trial is seen in training), for high/low valence and high/low arousal (threshold 5, >= is high):

- ``eeg``: log band power (4-8, 8-13, 13-30, 30-45 Hz; Welch, 1 s segments) of every EEG channel
  of every 3 s window of playback, z-scored per subject, 5-fold over trials, one model for all
  subjects; ``eeg_within`` one model per subject (mean over subjects: what a subject-dependent
  model can reach); ``eeg_loso`` one subject held out per fold (what carries across subjects).
- ``colour``: whole-frame mean B, G, R and grey-level standard deviation of every video, averaged
  over every 3rd playback frame (no detection, no crop), z-scored per subject, 8-fold over videos
  (10 repeats). On v2 this must be at
  chance: the face-appearance shortcut of v1 is gone.
- ``expression``: the planted mouth and brow intensities of the 10 frames the face stage samples
  from each 3 s window (mean of each), 5-fold over trials: the face ceiling.

Frames are the renderer's, before compression (the codec changes colour statistics by < 1 level).
"""

from __future__ import annotations

import numpy as np

from pipeline.readers import deap_format as df
from pipeline.synth.face_video import face_truth, render, scene_background
from pipeline.synth.params import SynthParams, subject_design
from pipeline.synth.signals import subject_signals
from store_schema.contract.layout import FRAMES_PER_SEGMENT

WINDOW_S = 3
BANDS_HZ = ((4.0, 8.0), (8.0, 13.0), (13.0, 30.0), (30.0, 45.0))
TARGETS = ("valence", "arousal")
COLOUR_FRAME_STEP = 3


def _score(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int,
           repeats: int = 1) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    folds = min(folds, len(np.unique(groups)))
    # Stratified: leave-one-out and unstratified folds on balanced labels are biased below chance
    # (each held-out item shifts the training balance towards the other class); repeats with
    # other fold draws lower the variance of small probes.
    scores = [cross_val_score(model, features, labels, groups=groups,
                              cv=StratifiedGroupKFold(folds, shuffle=True, random_state=r)).mean()
              for r in range(repeats)]
    return float(np.mean(scores))


def _windows(params: SynthParams) -> np.ndarray:
    """Start (s after playback began) of every whole 3 s window of a trial."""
    return np.arange(0, params.seconds - WINDOW_S + 1e-9, WINDOW_S, dtype=float)


def eeg_features(params: SynthParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Log band power per window: features (N, 32 x 4), ratings (N, 2), trial and subject ids."""
    from scipy.signal import welch

    rows, ratings, trials, subjects = [], [], [], []
    size = WINDOW_S * df.SFREQ
    for subject in range(1, params.subjects + 1):
        signals = subject_signals(subject=subject, params=params)
        eeg = signals.data[:, : len(df.EEG_CHANNELS)]
        features = []
        for start in _windows(params):
            first = df.BASELINE_SAMPLES + int(start * df.SFREQ)
            f, power = welch(eeg[:, :, first: first + size], fs=df.SFREQ, nperseg=df.SFREQ,
                             axis=-1)
            bands = [power[..., (f >= lo) & (f < hi)].mean(axis=-1) for lo, hi in BANDS_HZ]
            features.append(np.log(np.stack(bands, axis=-1)).reshape(len(eeg), -1))
        block = np.stack(features, axis=1).reshape(-1, len(df.EEG_CHANNELS) * len(BANDS_HZ))
        rows.append((block - block.mean(axis=0)) / block.std(axis=0))
        n_windows = len(_windows(params))
        ratings.append(np.repeat(signals.ratings[:, :2], n_windows, axis=0))
        trials.append(np.repeat(subject * 100 + np.arange(params.trials), n_windows))
        subjects.append(np.full(params.trials * n_windows, subject))
    return (np.concatenate(rows), np.concatenate(ratings), np.concatenate(trials),
            np.concatenate(subjects))


def _videos(params: SynthParams) -> list[tuple[int, int, np.ndarray]]:
    """(subject, Experiment_id, ratings) of every filmed trial."""
    out = []
    for subject in range(1, min(params.subjects, df.LAST_SUBJECT_WITH_VIDEO) + 1):
        ratings = subject_design(subject, params).ratings
        out += [(subject, e + 1, ratings[e, :2]) for e in range(params.trials)]
    return out


def colour_features(params: SynthParams) -> tuple[np.ndarray, np.ndarray]:
    """Per video: mean B, G, R and grey std of whole frames during playback, z-scored per subject
    (each subject has its own scene); ratings (N, 2)."""
    features, ratings, subjects = [], [], []
    for subject, experiment, rating in _videos(params):
        truth = face_truth(subject=subject, experiment_id=experiment, params=params)
        # Every 3rd playback frame, every 4th pixel of its rows and columns: the statistics of a
        # smooth video, 48x cheaper.
        playing = np.flatnonzero(truth.times >= df.BASELINE_SECONDS)[::COLOUR_FRAME_STEP]
        frames = render(truth, scene_background(params.seed, subject), playing)
        stats = [_frame_stats(frame[::4, ::4]) for frame in frames]
        features.append(np.mean(stats, axis=0))
        ratings.append(rating)
        subjects.append(subject)
    features, subjects = np.array(features), np.array(subjects)
    for subject in np.unique(subjects):
        mine = features[subjects == subject]
        features[subjects == subject] = (mine - mine.mean(axis=0)) / mine.std(axis=0)
    return features, np.array(ratings)


def _frame_stats(frame: np.ndarray) -> np.ndarray:
    pixels = frame.reshape(-1, 3).astype(np.float32)
    return np.concatenate([pixels.mean(axis=0), [pixels.mean(axis=1).std()]])


def expression_features(params: SynthParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window: mean planted mouth and brow intensity of the frames the face stage samples;
    ratings (N, 2); trial ids."""
    from pipeline.stages.faces.detect import sample_frame_indices

    features, ratings, trials = [], [], []
    for subject, experiment, rating in _videos(params):
        truth = face_truth(subject=subject, experiment_id=experiment, params=params)
        offset = float(df.BASELINE_SECONDS) if params.video_start == "baseline" else 0.0
        indices = sample_frame_indices(start_s=_windows(params), window_s=WINDOW_S,
                                       fps=params.fps, offset_s=offset,
                                       frame_count=truth.n_frames, n=FRAMES_PER_SEGMENT)
        features.append(truth.expression[indices].mean(axis=1))
        ratings.append(np.repeat(rating[None], len(indices), axis=0))
        trials.append(np.full(len(indices), subject * 100 + experiment))
    return np.concatenate(features), np.concatenate(ratings), np.concatenate(trials)


PROBES = ("eeg", "colour", "expression")


def probe_accuracies(
    params: SynthParams, *, probes: tuple[str, ...] = PROBES
) -> dict[str, dict[str, float]]:
    """``{probe: {target: accuracy, target + "_majority": majority rate}}`` for ``params``
    (``expression`` only for v2, whose face cue it is; ``eeg`` adds ``eeg_within`` and
    ``eeg_loso``)."""
    out: dict[str, dict[str, float]] = {}

    def record(name: str, target: str, accuracy: float, labels: np.ndarray) -> None:
        out.setdefault(name, {})[target] = round(accuracy, 3)
        out[name][f"{target}_majority"] = round(float(max(labels.mean(), 1 - labels.mean())), 3)

    unknown = sorted(set(probes) - set(PROBES))
    if unknown:
        raise ValueError(f"unknown probe(s) {unknown}; choose from {PROBES}")
    if "eeg" in probes:
        x, y, trials, subjects = eeg_features(params)
        for k, target in enumerate(TARGETS):
            labels = (y[:, k] >= 5).astype(int)
            record("eeg", target, _score(x, labels, trials, folds=5), labels)
            within = [_score(x[subjects == s], labels[subjects == s], trials[subjects == s],
                             folds=5) for s in np.unique(subjects)]
            record("eeg_within", target, float(np.mean(within)), labels)
            if params.subjects > 1:
                record("eeg_loso", target, _score(x, labels, subjects, folds=params.subjects),
                       labels)
    if "colour" in probes:
        x, y = colour_features(params)
        for k, target in enumerate(TARGETS):
            labels = (y[:, k] >= 5).astype(int)
            record("colour", target, _score(x, labels, np.arange(len(x)), folds=8, repeats=10),
                   labels)
    if "expression" in probes and params.level is not None:
        x, y, trials = expression_features(params)
        for k, target in enumerate(TARGETS):
            labels = (y[:, k] >= 5).astype(int)
            record("expression", target, _score(x[:, [k]], labels, trials, folds=5), labels)
    return out
