"""A feature store with planted class signals, for tests and benchmarks of ``train``.

It should not wait for the pipeline (Swin on a CPU runs ~10 frames/s), but it must be a store the
pipeline could have written: every stage (ingest, eeg, segment, faces, tokens) goes through
:meth:`FeatureStore.write_stage` with the input names the pipeline records (``eeg: {"ingest"}``,
``segment: {"eeg"}``, ``faces: {"segment_table", "model"}``, ``tokens: {"faces"}``), so the
staleness checks of :mod:`store_schema.contract.staleness` run on it exactly as on a real store.

Per subject:

* ``segment``: ``trials`` trials of ``segments_per_trial`` consecutive 3 s windows (``ingest`` and
  ``eeg`` hold the same EEG as whole trials, after a 3 s baseline of noise). The trials cycle
  through the four DEAP-4 quadrants (then shuffled); high ratings are uniform in [5.5, 8.5], low
  ones in [1.5, 4.5]. EEG is white noise (std 10 µV) plus, on channels 0-7, an arousal signal, and
  on channels 8-15 a valence signal in a random ``cross_fraction`` of the segments only: **EEG
  carries arousal always and valence sometimes**.
  The signal is band power with a random phase (what EEG carries): in every window,
  band-limited noise of std ``10 x eeg_signal``, arousal in alpha (8-13 Hz) when high and beta
  (18-25 Hz) when low, valence in theta (4-7 Hz) when high and gamma (32-40 Hz) when low. Only the
  power spectrum carries the class (the band moves, the total power does not, so a per-channel
  LayerNorm keeps it), and a linear layer on raw samples cannot decode it without learning band
  filters and rectification: the spectral tokenizers see it, the paper's raw one barely does.
* ``faces`` (crops are zeros, or with ``crops="noise"`` uniform noise whose mean is brighter for
  high valence, for Swin trained in the loop): ``detected`` all True but frame 0 of every 4th segment;
  ``has_video`` True except in the trials listed in ``faceless_trials`` (their segments get
  ``has_video`` False, ``detected`` False and pure-noise tokens, as the pipeline's black crops).
* ``tokens``: N(0, 1) float16 plus, on every token of ``informative_frames`` randomly chosen
  frames of the 10, ``±token_signal`` along a fixed direction u with per-dimension rms
  ``token_signal`` (+ for high valence), and in a random ``cross_fraction`` of the segments the
  same for arousal along another direction w: **faces carry valence always and arousal
  sometimes**, and only in some frames (what MIL is for). The record says
  ``weights_fingerprint`` (``random:<seed>`` by default), ``random_weights`` and, per segment,
  ``planted_frames`` (to score which frames MIL picks).

So on DEAP-4 either modality alone tops out near ``0.5 + cross_fraction / 2`` (0.75 by default:
the other dimension is a coin flip where it is missing), and a model that uses both can reach 1.
"""

from __future__ import annotations

import numpy as np

from store_schema.contract.layout import FRAMES_PER_SEGMENT, N_EEG_CHANNELS, N_TOKENS, TOKEN_DIM, Stage
from store_schema.engine.store import FeatureStore

_LIBS = {"numpy": np.__version__}
SFREQ = 128.0
WINDOW = 384
CODE_VERSION = "synthetic-2"
BANDS_HZ = {"arousal": ((8.0, 13.0), (18.0, 25.0)), "valence": ((4.0, 7.0), (32.0, 40.0))}
"""(band when high, band when low) of each planted dimension, Hz."""


def planted_ratings(trials: int, rng: np.random.Generator) -> np.ndarray:
    """(trials, 2) valence, arousal: quadrants cycled then shuffled, never near 5."""
    quadrant = rng.permutation(np.arange(trials) % 4)  # HAHV, HALV, LAHV, LALV
    high_a, high_v = quadrant < 2, quadrant % 2 == 0
    draw = lambda high: np.where(high, rng.uniform(5.5, 8.5, trials), rng.uniform(1.5, 4.5, trials))  # noqa: E731
    return np.stack([draw(high_v), draw(high_a)], axis=1).round(2)


def band_noise(rng: np.random.Generator, shape: tuple[int, ...], band: tuple[float, float]) -> np.ndarray:
    """Noise of unit std over the last axis (``WINDOW`` samples at ``SFREQ``) with power only in
    ``band`` (Hz): random amplitude and phase at every frequency of the band."""
    freqs = np.fft.rfftfreq(WINDOW, 1 / SFREQ)
    spectrum = rng.normal(size=(*shape, len(freqs))) + 1j * rng.normal(size=(*shape, len(freqs)))
    spectrum[..., (freqs < band[0]) | (freqs > band[1])] = 0
    wave = np.fft.irfft(spectrum, n=WINDOW, axis=-1)
    return (wave / wave.std(axis=-1, keepdims=True)).astype(np.float32)


def _planted_eeg(rng: np.random.Generator, signal: float, high_a: np.ndarray, high_v: np.ndarray,
                 cross: np.ndarray) -> np.ndarray:
    n = len(high_a)
    eeg = rng.normal(0, 10, size=(n, N_EEG_CHANNELS, WINDOW)).astype(np.float32)
    for channels, high, where, (band_high, band_low) in (
            (slice(0, 8), high_a, np.ones(n, bool), BANDS_HZ["arousal"]),
            (slice(8, 16), high_v, cross.astype(bool), BANDS_HZ["valence"])):
        k = channels.stop - channels.start
        for rows, band in ((where & high, band_high), (where & ~high, band_low)):
            if rows.any():
                eeg[rows, channels] += (10 * signal) * band_noise(rng, (int(rows.sum()), k), band)
    return eeg


def write_planted_store(
    url: str,
    *,
    subjects: int = 2,
    trials: int = 8,
    segments_per_trial: int = 4,
    seed: int = 0,
    eeg_signal: float = 0.5,
    token_signal: float = 0.3,
    informative_frames: int = 3,
    cross_fraction: float = 0.5,
    weights_fingerprint: str | dict[int, str] = "random:0",
    weights_provenance: dict | None = None,
    tokens: bool | set[int] = True,
    faceless_trials: dict[int, set[int]] | None = None,
    crops: str = "zeros",
    trial_gain: float = 0.0,
) -> FeatureStore:
    """Write (or overwrite) subjects 1..``subjects``; return the opened store.

    ``weights_fingerprint`` may map subject -> fingerprint (to build a mixed store);
    ``weights_provenance`` is recorded as the pipeline records its weights' (``origin``,
    ``face_tuned``, spec...); ``tokens``
    may be the set of subjects that get a tokens stage; ``faceless_trials`` maps a subject to
    the 0-based trials whose video is missing (every trial of it: a subject without video).
    ``trial_gain`` > 0 gives every trial a **trial signature**: each channel of each trial is
    scaled by ``exp(trial_gain x z)``, z ~ N(0, 1) drawn per (trial, channel) independently of
    the label (the electrode contact and state of one sitting); every window of the trial shares
    it, so a random window split lets a model recognise the trial. 0 (default): the windows of a
    trial are independent given its label.
    """
    store = FeatureStore.open(url)
    shared = np.random.default_rng([seed, 999])
    dir_v, dir_a = shared.normal(size=(2, TOKEN_DIM))
    dir_a -= dir_v * (dir_a @ dir_v) / (dir_v @ dir_v)  # orthogonal directions
    dir_v, dir_a = ((d / np.linalg.norm(d) * np.sqrt(TOKEN_DIM)).astype(np.float32) for d in (dir_v, dir_a))
    faceless_trials = faceless_trials or {}

    for subject in range(1, subjects + 1):
        rng = np.random.default_rng([seed, subject])
        ratings = planted_ratings(trials, rng)
        other_ratings = rng.uniform(1, 9, (trials, 2)).round(2)  # dominance, liking
        n = trials * segments_per_trial
        trial_index = np.repeat(np.arange(trials), segments_per_trial).astype(np.int32)
        valence, arousal = ratings[trial_index, 0], ratings[trial_index, 1]
        high_a, high_v = arousal >= 5, valence >= 5
        cross_eeg = (rng.random(n) < cross_fraction).astype(np.float32)
        windows = _planted_eeg(rng, eeg_signal, high_a, high_v, cross_eeg)
        if trial_gain > 0:  # its own stream: the store without a signature is unchanged
            z = np.random.default_rng([seed, subject, 0x6A1]).normal(size=(trials, N_EEG_CHANNELS))
            windows *= np.exp(trial_gain * z).astype(np.float32)[trial_index][:, :, None]
        cross_face = rng.random(n) < cross_fraction
        experiment_id = np.arange(1, trials + 1, dtype=np.int32)
        presentation = (rng.permutation(trials) + 1).astype(np.int32)
        segment_index = np.tile(np.arange(segments_per_trial), trials).astype(np.int32)

        # ingest and eeg: whole trials (3 s baseline of noise, then the windows back to back)
        baseline = rng.normal(0, 10, (trials, N_EEG_CHANNELS, WINDOW)).astype(np.float32)
        continuous = np.concatenate(
            [baseline, windows.reshape(trials, segments_per_trial, N_EEG_CHANNELS, WINDOW)
             .transpose(0, 2, 1, 3).reshape(trials, N_EEG_CHANNELS, segments_per_trial * WINDOW)],
            axis=2)
        common = {"code_version": CODE_VERSION, "libraries": _LIBS, "wall_seconds": 0.0}
        ingest = store.write_stage(
            subject=subject, stage=Stage.ingest,
            arrays={"eeg": continuous, "eog": np.zeros((trials, 2, continuous.shape[2]), np.float32),
                    "ratings": np.concatenate([ratings, other_ratings], axis=1),
                    "experiment_id": experiment_id, "presentation_trial": presentation},
            params={"source": "preprocessed"},
            inputs={"dat": f"synthetic:{seed}:{subject}:{eeg_signal}", "ratings": "synthetic"},
            extra={"sfreq": SFREQ, "trial_seconds": segments_per_trial * WINDOW / SFREQ,
                   "synthetic": "planted band power"}, **common)
        eeg = store.write_stage(
            subject=subject, stage=Stage.eeg,
            arrays={"eeg": continuous, "ica_excluded": np.zeros(0, np.int32),
                    "ica_scores": np.zeros((2, N_EEG_CHANNELS), np.float32),
                    "ica_flagged": np.zeros((2, N_EEG_CHANNELS), bool),
                    "ica_mixing": np.eye(N_EEG_CHANNELS), "ica_unmixing": np.eye(N_EEG_CHANNELS),
                    "ica_channel_mean": np.zeros(N_EEG_CHANNELS),
                    "ica_label_probabilities": np.full((N_EEG_CHANNELS, 7), np.nan, np.float32)},
            params={"synthetic": "identity"}, inputs={"ingest": ingest.fingerprint}, **common)
        store.write_stage(
            subject=subject, stage=Stage.segment,
            arrays={"eeg": windows, "trial_index": trial_index,
                    "experiment_id": experiment_id[trial_index],
                    "presentation_trial": presentation[trial_index], "segment_index": segment_index,
                    "start_s": (3.0 * segment_index).astype(np.float32),
                    "valence": valence, "arousal": arousal,
                    "dominance": other_ratings[trial_index, 0], "liking": other_ratings[trial_index, 1]},
            params={"window_s": 3.0, "stride_s": 3.0, "synthetic": "planted"},
            inputs={"eeg": eeg.fingerprint}, extra={"window_s": 3.0}, **common)

        has_video = ~np.isin(trial_index, sorted(faceless_trials.get(subject, ())))
        detected = np.ones((n, FRAMES_PER_SEGMENT), bool)
        detected[::4, 0] = False
        detected[~has_video] = False
        pixels = np.zeros((n, FRAMES_PER_SEGMENT, 224, 224, 3), np.uint8)
        if crops == "noise":  # brighter for high valence; black without video
            shift = np.where(high_v, 40, -40)[:, None, None, None, None]
            pixels[:] = np.clip(rng.integers(40, 216, pixels.shape) + shift, 0, 255)
            pixels[~has_video] = 0
        faces = store.write_stage(
            subject=subject, stage=Stage.faces,
            arrays={"crops": pixels,
                    "detected": detected, "boxes": np.zeros((n, FRAMES_PER_SEGMENT, 4), np.float32),
                    "scores": detected.astype(np.float32), "has_video": has_video,
                    "frame_index": np.where(has_video[:, None], np.arange(FRAMES_PER_SEGMENT),
                                            -1).astype(np.int32)},
            params={"synthetic": "zeros"},
            inputs={"segment_table": store.segment_table_fingerprint(subject),
                    "model": "sha256:synthetic"}, **common)
        if tokens is True or (not isinstance(tokens, bool) and subject in tokens):
            fp = (weights_fingerprint.get(subject, "random:0")
                  if isinstance(weights_fingerprint, dict) else weights_fingerprint)
            tok = np.empty((n, FRAMES_PER_SEGMENT, N_TOKENS, TOKEN_DIM), np.float16)
            planted: list[list[int]] = []
            for i in range(n):
                frames = rng.standard_normal((FRAMES_PER_SEGMENT, N_TOKENS, TOKEN_DIM), np.float32)
                chosen = rng.choice(FRAMES_PER_SEGMENT, informative_frames, replace=False)
                planted.append(sorted(int(f) for f in chosen) if has_video[i] else [])
                if has_video[i]:  # a missing video gives black crops: nothing of the face
                    frames[chosen] += (token_signal * (1.0 if high_v[i] else -1.0)) * dir_v
                    if cross_face[i]:
                        frames[chosen] += (token_signal * (1.0 if high_a[i] else -1.0)) * dir_a
                tok[i] = frames
            store.write_stage(
                subject=subject, stage=Stage.tokens, arrays={"tokens": tok},
                params={"model_name": "swin_tiny_patch4_window7_224", "weights_fingerprint": fp},
                inputs={"faces": faces.fingerprint},
                extra={"weights_fingerprint": fp, "random_weights": fp.startswith("random:"),
                       "synthetic": "planted valence signal", "planted_frames": planted,
                       **({"weights": weights_provenance} if weights_provenance else {})}, **common)
    return store
