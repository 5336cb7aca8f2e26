"""A feature store with planted class signals, written straight through ``write_stage``.

For tests and benchmarks of ``train`` that should not wait for the pipeline (Swin on a CPU runs
~10 frames/s). What it writes, per subject, follows the store layout exactly:

* ``segment``: ``trials`` trials of ``segments_per_trial`` windows. The trials cycle through the
  four DEAP-4 quadrants (then shuffled); high ratings are uniform in [5.5, 8.5], low ones in
  [1.5, 4.5]. EEG is white noise (std 10 µV) plus, on channels 0-7, ``±eeg_signal`` x a fixed
  smooth waveform A (+ for high arousal, - for low), and on channels 8-15 the same for valence
  with waveform B, but only in a random ``cross_fraction`` of the segments: **EEG carries arousal
  always and valence sometimes**. The sign, not the amplitude, carries the class, because the EEG
  tokenizer LayerNorms every channel.
* ``faces`` (optional; crops are zeros): ``detected`` all True but frame 0 of every 4th segment;
  ``has_video`` all True.
* ``tokens``: N(0, 1) float16 plus, on every token of ``informative_frames`` randomly chosen
  frames of the 10, ``±token_signal`` along a fixed direction u with per-dimension rms
  ``token_signal`` (+ for high valence), and in a random ``cross_fraction`` of the segments the
  same for arousal along another direction w: **faces carry valence always and arousal
  sometimes**, and only in some frames (what MIL is for). The record says
  ``weights_fingerprint`` (``random:<seed>`` by default) and ``random_weights``.

So on DEAP-4 either modality alone tops out near ``0.5 + cross_fraction / 2`` (0.75 by default:
the other dimension is a coin flip where it is missing), and a model that uses both can reach 1.
"""

from __future__ import annotations

import numpy as np

from store_schema.layout import FRAMES_PER_SEGMENT, N_EEG_CHANNELS, N_TOKENS, TOKEN_DIM, Stage
from store_schema.store import FeatureStore

_LIBS = {"numpy": np.__version__}


def planted_ratings(trials: int, rng: np.random.Generator) -> np.ndarray:
    """(trials, 2) valence, arousal: quadrants cycled then shuffled, never near 5."""
    quadrant = rng.permutation(np.arange(trials) % 4)  # HAHV, HALV, LAHV, LALV
    high_a, high_v = quadrant < 2, quadrant % 2 == 0
    draw = lambda high: np.where(high, rng.uniform(5.5, 8.5, trials), rng.uniform(1.5, 4.5, trials))  # noqa: E731
    return np.stack([draw(high_v), draw(high_a)], axis=1).round(2)


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
    faces: bool = True,
    tokens: bool | set[int] = True,
) -> FeatureStore:
    """Write (or overwrite) subjects 1..``subjects``; return the opened store.

    ``weights_fingerprint`` may map subject -> fingerprint (to build a mixed store);
    ``tokens`` may be the set of subjects that get a tokens stage.
    """
    store = FeatureStore.open(url)
    shared = np.random.default_rng([seed, 999])
    t = np.linspace(0, 3, 384, endpoint=False)
    wave_a = np.sin(2 * np.pi * 3 * t) + 0.6 * np.sin(2 * np.pi * 7 * t + 1.0)
    wave_v = np.sin(2 * np.pi * 5 * t + 0.5) - 0.5 * np.sin(2 * np.pi * 11 * t)
    wave_a, wave_v = ((w / w.std()).astype(np.float32) for w in (wave_a, wave_v))
    dir_v, dir_a = shared.normal(size=(2, TOKEN_DIM))
    dir_a -= dir_v * (dir_a @ dir_v) / (dir_v @ dir_v)  # orthogonal directions
    dir_v, dir_a = ((d / np.linalg.norm(d) * np.sqrt(TOKEN_DIM)).astype(np.float32) for d in (dir_v, dir_a))

    for subject in range(1, subjects + 1):
        rng = np.random.default_rng([seed, subject])
        ratings = planted_ratings(trials, rng)
        n = trials * segments_per_trial
        trial_index = np.repeat(np.arange(trials), segments_per_trial).astype(np.int32)
        valence, arousal = ratings[trial_index, 0], ratings[trial_index, 1]
        high_a = np.where(arousal >= 5, 1.0, -1.0).astype(np.float32)
        high_v = np.where(valence >= 5, 1.0, -1.0).astype(np.float32)

        eeg = rng.normal(0, 10, size=(n, N_EEG_CHANNELS, 384)).astype(np.float32)
        eeg[:, :8, :] += (10 * eeg_signal) * high_a[:, None, None] * wave_a
        cross_eeg = (rng.random(n) < cross_fraction).astype(np.float32)
        eeg[:, 8:16, :] += (10 * eeg_signal) * (cross_eeg * high_v)[:, None, None] * wave_v
        cross_face = rng.random(n) < cross_fraction
        experiment_id = (trial_index + 1).astype(np.int32)
        presentation = (rng.permutation(trials)[trial_index] + 1).astype(np.int32)
        segment_index = np.tile(np.arange(segments_per_trial), trials).astype(np.int32)
        segment = store.write_stage(
            subject=subject, stage=Stage.segment,
            arrays={"eeg": eeg, "trial_index": trial_index, "experiment_id": experiment_id,
                    "presentation_trial": presentation, "segment_index": segment_index,
                    "start_s": (3.0 * segment_index).astype(np.float32),
                    "valence": valence, "arousal": arousal,
                    "dominance": rng.uniform(1, 9, n).round(2), "liking": rng.uniform(1, 9, n).round(2)},
            params={"window_s": 3.0, "stride_s": 3.0, "synthetic": "planted"},
            inputs={"eeg": f"synthetic:{seed}:{subject}"}, code_version="synthetic-1",
            libraries=_LIBS, wall_seconds=0.0, extra={"window_s": 3.0})
        upstream = {"segment": segment.fingerprint}
        if faces:
            detected = np.ones((n, FRAMES_PER_SEGMENT), bool)
            detected[::4, 0] = False
            record = store.write_stage(
                subject=subject, stage=Stage.faces,
                arrays={"crops": np.zeros((n, FRAMES_PER_SEGMENT, 224, 224, 3), np.uint8),
                        "detected": detected,
                        "boxes": np.zeros((n, FRAMES_PER_SEGMENT, 4), np.float32),
                        "scores": detected.astype(np.float32), "has_video": np.ones(n, bool)},
                params={"synthetic": "zeros"}, inputs=upstream, code_version="synthetic-1",
                libraries=_LIBS, wall_seconds=0.0)
            upstream = {"faces": record.fingerprint}
        if tokens is True or (not isinstance(tokens, bool) and subject in tokens):
            fp = (weights_fingerprint.get(subject, "random:0")
                  if isinstance(weights_fingerprint, dict) else weights_fingerprint)
            tok = np.empty((n, FRAMES_PER_SEGMENT, N_TOKENS, TOKEN_DIM), np.float16)
            for i in range(n):
                frames = rng.standard_normal((FRAMES_PER_SEGMENT, N_TOKENS, TOKEN_DIM), np.float32)
                chosen = rng.choice(FRAMES_PER_SEGMENT, informative_frames, replace=False)
                frames[chosen] += (token_signal * high_v[i]) * dir_v
                if cross_face[i]:
                    frames[chosen] += (token_signal * high_a[i]) * dir_a
                tok[i] = frames
            store.write_stage(
                subject=subject, stage=Stage.tokens, arrays={"tokens": tok},
                params={"model_name": "swin_tiny_patch4_window7_224", "weights_fingerprint": fp},
                inputs=upstream, code_version="synthetic-1", libraries=_LIBS, wall_seconds=0.0,
                extra={"weights_fingerprint": fp, "random_weights": fp.startswith("random:"),
                       "synthetic": "planted valence signal"})
    return store
