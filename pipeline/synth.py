"""Synthetic DEAP: DEAP's exact file formats, filled with planted, documented signals.

The project never has the real (licensed) DEAP files, so every stage is tested on data written
here. ``write_synthetic_deap`` writes, under ``out/``:

- ``data_preprocessed_python/sNN.dat``: ``{'data': float64 (T, 40, 128*(3+S)), 'labels': float64
  (T, 4)}`` pickled as Python 2 wrote DEAP's files (protocol 2, raw ``str`` payloads, references
  to ``numpy.core``): ``pickle.load(f, encoding="latin1")`` loads it and a plain ``pickle.load(f)``
  fails with UnicodeDecodeError, as on the real files. Trials in ``Experiment_id`` order, channels
  in ``deap_format.ALL_CHANNELS`` order, labels = valence, arousal, dominance, liking.
- ``metadata_csv/participant_ratings.csv``: DEAP's verbatim header, one row per (participant,
  Trial), sorted by participant then Trial.
- ``face_video/sNN/sNN_trialTT.avi`` (TT = presentation order) for subjects 1..22, except
  ``params.missing_videos``.
- ``data_original/sNN.bdf`` with ``params.bdf``: the raw recording (512 Hz BioSemi BDF, 48
  channels, Status triggers with DEAP's codes and timings) holding the same trials as the
  ``.dat``; see :func:`bdf_channels`.
- ``synth_manifest.json``: params, generator version and a note that the data is synthetic.

Same params give byte-identical ``.dat``, CSV and manifest files and identical video frames. Every
random draw comes from ``numpy.random.default_rng([seed, subject, stream, ...])``, so a subject's
data never depends on how many subjects (``subjects``) are written. Changing ``trials`` or
``seconds`` changes everything of that subject.

Planted signals (later tests assert on these numbers)
======================================================
Notation: ``V``, ``A`` = the trial's valence and arousal ratings; ``S`` = ``params.seconds``; trial
time ``tau`` = seconds since the start of the 3 s baseline (sample ``k`` is at ``tau = k / 128``).

Ratings and schedule (per subject)
    Quadrants HAHV, HALV, LAHV, LALV cycle over the T trials, then are shuffled. High ratings are
    uniform in [5.4, 8.8], low ones in [1.5, 4.6] (never near the threshold 5); dominance and
    liking uniform in [1, 9]; all rounded to 2 decimals, and the ``.dat`` labels are exactly those
    rounded values. Familiarity is an integer 1..5, blank for participants 2, 15 and 23 as in the
    real file. ``Trial`` (presentation order) is a seeded permutation of ``Experiment_id``.
    ``Start_time`` (µs): the first Trial at 1.6e6 + U(0, 2e5); each next one
    ``5 + 3 + S + 15 + U(0, 5)`` seconds later (fixation, baseline, video, rating, jitter).

Clean EEG, rows 0..31 (µV), a linear mixture of independent non-Gaussian sources
    Every source is band-limited Gaussian noise times a log-normal amplitude envelope
    ``exp(sigma * g)`` (``g``: unit-variance noise low-passed with a 0.25 Hz Gaussian), then scaled
    to unit std over the whole trial: bursty, excess kurtosis ~2-5 (sigma 0.4) or ~3-8 (sigma
    0.5). The spatial patterns, drawn once per subject, are smooth blobs over approximate 2-D
    electrode positions (``_CHANNEL_XY``).

    - Background: 20 pink (amplitude ~ f^-0.5) sources band-limited to 4-45 Hz, sigma 0.4,
      patterns +-blob (width 0.35-0.7), scaled to 18 µV rms over channels.
    - Posterior alpha: 2 sources (10 Hz +- 0.5 per source, Gaussian spectrum sd 0.8 Hz,
      sigma 0.5), mirror-image blobs over left and right occipital cortex, 14 µV at the blob
      centre with a floor of 0.3 * 14 µV on every channel.
    - Frontal alpha: 2 sources, one on F3, AF3, F7, FC5 only and one on F4, AF4, F8, FC6 only,
      9 µV each.
    - Beta: 3 sources, 13-30 Hz, sigma 0.5, broad patterns 6 µV * (0.5 + 0.5 * blob).
    - Sensor noise: white Gaussian, 1 µV per channel.

    Channel std comes out at 13-27 µV. Rating-dependent amplitude gains, applied from ``tau = 3``
    on (linear 0.25 s ramp; the baseline runs at the neutral gains of ``A = V = 5``):

    - Arousal: every alpha source x ``1 - 0.075 * (A - 5)`` (1.3 at A=1, 0.7 at A=9); every beta
      source x ``1 + 0.1 * (A - 5)`` (0.6 .. 1.4). Monotone, on all channels.
    - Valence (frontal alpha asymmetry): the left frontal alpha source x ``1 - 0.125 * (V - 5)``,
      the right one x ``1 + 0.125 * (V - 5)`` (on top of the arousal gain): for high valence, left
      frontal alpha power is lower than right; reversed for low valence.

    Measured with Welch band power of samples 384: over 40 trials (worst of 10 seeds for 12 s
    trials; 3 seeds for 60 s): Spearman(mean beta power, arousal) >= 0.79 (12 s) / 0.97 (60 s);
    Spearman(mean alpha power, arousal) <= -0.78 / -0.96; Spearman(log right/left frontal alpha,
    valence) >= 0.78 / 0.96, its sign right on >= 85 % of the trials with ``|V - 5| >= 2`` (12 s)
    and >= 94 % of those with ``|V - 5| > 1`` (60 s); O1/Oz/O2 alpha >= 1.47 x Fz/F3/F4 alpha.
    With 4 s trials the relations are weak (0.35, -0.46, 0.32): test them on >= 12 s trials.

    FastICA: sklearn's converges with up to 20 components (11-300 iterations on 4-8 trials of
    12 s) and MNE's (1-50 Hz, 20 components) in 14-51 iterations; ``find_bads_eog`` then flags an
    hEOG component (|r| 0.97) and a vEOG one (|r| 1.0). With 25-32 components sklearn's does not
    converge: the smooth background patterns are nearly collinear (condition number ~1e4), so
    the 1 µV sensor noise leaves a few directions Gaussian.

EOG (µV) and its leak into the EEG
    - vEOG: blinks, Hann-shaped, 250-350 ms wide, 100-200 µV, positive; inter-blink interval
      0.8 s + exponential, mean 1/rate with rate U(0.2, 0.5) Hz per subject.
    - hEOG: saccades: gaze level jumps to U(-80, 80) µV with a 40 ms linear ramp, then holds;
      rate U(0.5, 1.0) Hz per subject.
    - Mixing ``EOG_MIXING`` (32 x 2, columns hEOG, vEOG), zero except
      Fp1 (-0.15, 0.55), Fp2 (+0.15, 0.60), AF3 (-0.10, 0.30), AF4 (+0.10, 0.28).
      Observed EEG = ``clean_eeg + eog_mixing @ eog``, exactly that expression.
    - Rows 32, 33 (hEOG, vEOG) = eog + white Gaussian noise of 2 µV.

Peripheral rows 34..39 (plausible shapes; units are not claimed to match DEAP's)
    zEMG, tEMG: 20-60 Hz noise, 2 µV at rest plus 0.5-2 s bursts of ~30 µV. GSR: skin
    conductance 2-8 µS per subject with a slow drift. Respiration: belt, 0.2-0.3 Hz per
    subject, ~1000 +- 300 a.u. Plethysmograph: pulse 1.0-1.4 Hz per subject (systolic peak plus a
    dicrotic bump). Temperature: 32-34 °C with a ~0.1 °C drift.

Face video (720x576, BGR)
    The photograph ``skimage.data.astronaut()`` (a public-domain NASA portrait). In that 512x512
    image the face (hairline to chin, cheek to cheek) is ``PHOTO_FACE_BOX = (176, 68, 96, 104)``
    (x, y, w, h; found by eye and confirmed by skimage's LBP face cascade at (175, 70, 93, 93)).
    The head crop ``PHOTO_CROP = (146, 14, 156, 186)``, lightly blurred (sigma 0.8) and with an
    8 px feathered edge, is pasted on a mid-grey, smoothly textured, vignetted background (drawn
    once per subject). Frame ``i`` of a video shows trial time ``tau = i / fps`` (video_start
    "baseline", duration 3 + S s) or ``tau = 3 + i / fps`` ("playback", S s); frame count =
    ``round(duration * fps)``. Per trial (seeded by subject and Experiment_id):

    - Path: face-crop centre at (360 + 110 sin(2 pi tau / Px + .), 288 + 45 sin(2 pi tau / Py + .))
      with Px ~ U(9, 14) s, Py ~ U(6, 10) s; scale 1 + 0.2 sin(2 pi tau / Ps + .), Ps ~ U(12, 20) s,
      on a base where the face box is 190 px tall (152..228 px).
    - Lighting: whole-frame brightness gain 1 + 0.15 sin(2 pi tau / Pl + .), Pl ~ U(7, 12) s.
    - Rating cues, from tau = 3 on (neutral before): colour tint, red x ``1 + 0.03 * (V - 5)``,
      blue x ``1 - 0.03 * (V - 5)`` (warm for high valence, cool for low); contrast about grey 128
      x ``1 + 0.0625 * (A - 5)`` (0.75 at A=1, 1.25 at A=9).
    - Occlusion: 2 intervals of 0.3 s (at least one frame), starting at U(0.2, 0.4) * S and
      U(0.6, 0.8) * S seconds into playback (so both video_start modes contain them): an opaque
      ``OCCLUDER_BGR`` rectangle covers the face box grown by 25 % on every side.

    ``face_truth`` returns all of this per frame and ``render_video_frames`` the exact frames
    before compression; the renderer draws from the truth, so they cannot disagree. skimage's LBP
    frontal-face cascade (on frames halved to 360x288) finds the face in 384/384 sampled visible
    frames of 8 mp4v videos (median IoU with the truth box 0.87) and nothing in 48/48 occluded ones.

Codec and measured cost (2-core machine shared with another busy process, OpenCV 5.0)
======================================================================================
OpenCV's FFmpeg writer ignores ``VIDEOWRITER_PROP_QUALITY`` and passes no options to the encoder
(``avcodec_open2(..., NULL)``; ``OPENCV_FFMPEG_WRITER_OPTIONS`` changes nothing for MJPG), so
its MJPG cannot be made smaller; OpenCV's own MJPEG writer (``CAP_OPENCV_MJPEG``) honours the
quality but is larger than FFmpeg's at every usable setting (~23-40 KB/frame at quality 15-50 vs
FFmpeg's ~17 KB). Hence ``DEFAULT_CODEC = "mp4v"``. Measured ``write_synthetic_deap`` (wall
seconds, bytes on disk):

- One subject at DEAP's full shape (40 trials x 60 s, 50 fps, video_start "baseline"):
  mp4v 338-415 s: 402 MB in all: 40 videos 299 MB (7.5 MB each), .dat 103 MB, CSV 1.7 KB.
  MJPG 463 s: 40 videos 2126 MB (53 MB each), same .dat and CSV.
- Defaults (2 subjects x 8 trials x 12 s, 50 fps):
  mp4v 43 s: 38.9 MB in all (16 videos 29.1 MB, two .dat 9.8 MB, CSV 701 B).
  MJPG 68 s: 211 MB in all (16 videos 201 MB).

About 3 ms per frame go to rendering and encoding; the EEG of a full subject takes ~3 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline import deap_format as df

GENERATOR_VERSION = "1"
SYNTHETIC_NOTE = (
    "This folder holds SYNTHETIC data in DEAP's file formats, written by pipeline.synth; it holds "
    "no recording of any person (the face is the public-domain photograph "
    "skimage.data.astronaut()), and its planted signals are documented in pipeline/synth.py."
)
MANIFEST_NAME = "synth_manifest.json"

MAX_SUBJECTS = 32
MAX_TRIALS = 40
FAMILIARITY_BLANK_PARTICIPANTS = (2, 15, 23)
"""Participants whose Familiarity column is blank in the real participant_ratings.csv."""

DEFAULT_CODEC: Literal["MJPG", "mp4v"] = "mp4v"
"""mp4v keeps a full-shape subject at ~0.4 GB (MJPG: ~2.2 GB, over the 2 GB budget, and OpenCV
cannot lower MJPG's quality). Its cost: a GOP of 12 (one keyframe in 12 frames; no B-frames), so a
reader must decode from a keyframe, whereas DEAP's DV is intra-only. OpenCV's seek
(``CAP_PROP_POS_FRAMES``) and PyAV decoding are still frame-exact on these files. Use
``codec="MJPG"`` to exercise a reader's intra-only fast path (every packet a keyframe)."""

FRAME_W, FRAME_H = 720, 576
PHOTO_FACE_BOX = (176, 68, 96, 104)
"""Face in ``skimage.data.astronaut()`` (512x512): x, y, w, h in pixels."""
PHOTO_CROP = (146, 14, 156, 186)
"""Head crop of the photograph that is pasted into each frame: x, y, w, h in pixels."""
BASE_FACE_HEIGHT = 190.0
OCCLUDER_BGR = (30, 30, 30)
OCCLUSION_SECONDS = 0.3
OCCLUDER_GROW = 0.25

EOG_LEAK: dict[str, tuple[float, float]] = {
    "Fp1": (-0.15, 0.55),
    "Fp2": (0.15, 0.60),
    "AF3": (-0.10, 0.30),
    "AF4": (0.10, 0.28),
}
"""Rows of ``EOG_MIXING`` that are not zero: (hEOG, vEOG) gain of each channel."""

LEFT_FRONTAL = ("F3", "AF3", "F7", "FC5")
RIGHT_FRONTAL = ("F4", "AF4", "F8", "FC6")

ALPHA_AROUSAL_SLOPE = -0.075
BETA_AROUSAL_SLOPE = 0.1
ASYMMETRY_VALENCE_SLOPE = 0.125
TINT_VALENCE_SLOPE = 0.03
CONTRAST_AROUSAL_SLOPE = 0.0625
RAMP_SECONDS = 0.25

# Approximate 2-D scalp positions (x: left -1 .. right 1, y: back -1 .. front 1); only the
# smoothness of the spatial patterns depends on them.
_CHANNEL_XY: dict[str, tuple[float, float]] = {
    "Fp1": (-0.31, 0.95), "Fp2": (0.31, 0.95), "AF3": (-0.33, 0.74), "AF4": (0.33, 0.74),
    "F7": (-0.81, 0.59), "F3": (-0.41, 0.54), "Fz": (0.0, 0.5), "F4": (0.41, 0.54),
    "F8": (0.81, 0.59), "FC5": (-0.68, 0.28), "FC1": (-0.24, 0.25), "FC2": (0.24, 0.25),
    "FC6": (0.68, 0.28), "T7": (-1.0, 0.0), "C3": (-0.5, 0.0), "Cz": (0.0, 0.0),
    "C4": (0.5, 0.0), "T8": (1.0, 0.0), "CP5": (-0.68, -0.28), "CP1": (-0.24, -0.25),
    "CP2": (0.24, -0.25), "CP6": (0.68, -0.28), "P7": (-0.81, -0.59), "P3": (-0.41, -0.54),
    "Pz": (0.0, -0.5), "P4": (0.41, -0.54), "P8": (0.81, -0.59), "PO3": (-0.33, -0.74),
    "PO4": (0.33, -0.74), "O1": (-0.31, -0.95), "Oz": (0.0, -1.0), "O2": (0.31, -0.95),
}  # fmt: skip


def _eog_mixing() -> np.ndarray:
    mixing = np.zeros((len(df.EEG_CHANNELS), 2))
    for name, gains in EOG_LEAK.items():
        mixing[df.EEG_CHANNELS.index(name)] = gains
    mixing.flags.writeable = False
    return mixing


EOG_MIXING = _eog_mixing()
"""(32, 2) EOG -> EEG leak, columns (hEOG, vEOG), rows in ``deap_format.EEG_CHANNELS`` order."""


# ---------------------------------------------------------------------------------------------
# Parameters and report


_MISSING_TOKEN = re.compile(r"^s(\d{1,2})_trial(\d{1,2})(?:\.avi)?$|^(\d{1,2}):(\d{1,2})$", re.I)


def parse_missing_videos(spec: str, /) -> tuple[tuple[int, int], ...]:
    """Parse ``"s01_trial03,s02_trial05"`` (or ``"1:3,2:5"``) into ((1, 3), (2, 5)).

    Trials are presentation order, as in the video file names. Sorted, duplicates dropped.
    """
    pairs = set()
    for token in re.split(r"[,\s]+", spec.strip()):
        if not token:
            continue
        match = _MISSING_TOKEN.match(token)
        if match is None:
            raise ValueError(
                f"cannot read missing video {token!r}: write sNN_trialTT (e.g. s01_trial03) or "
                "SUBJECT:TRIAL (e.g. 1:3), separated by commas"
            )
        numbers = [int(g) for g in match.groups() if g is not None]
        pairs.add((numbers[0], numbers[1]))
    return tuple(sorted(pairs))


class SynthParams(BaseModel):
    """What to generate; the same params always give the same files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subjects: int = Field(2, ge=1, le=MAX_SUBJECTS, description="subjects 1..N")
    trials: int = Field(8, ge=1, le=MAX_TRIALS, description="trials per subject")
    # 600 s keeps a full .dat (40 x 40 x 128*603 float64) under the 2 GiB of one Python 2 string.
    seconds: int = Field(12, ge=3, le=600, description="trial length after the 3 s baseline")
    seed: int = Field(0, ge=0)
    fps: float = Field(50.0, gt=0, le=120, description="face video frame rate")
    video_start: Literal["baseline", "playback"] = Field(
        "baseline", description="video covers the baseline too (3+S s) or only playback (S s)"
    )
    missing_videos: tuple[tuple[int, int], ...] = Field(
        (), description="(subject, presentation-order trial) whose video is not written"
    )
    videos: bool = True
    codec: Literal["MJPG", "mp4v"] = DEFAULT_CODEC
    bdf: bool = Field(False, description="also write data_original/sNN.bdf (512 Hz raw recordings)")

    @field_validator("missing_videos", mode="before")
    @classmethod
    def _parse_spec(cls, value: object) -> object:
        return parse_missing_videos(value) if isinstance(value, str) else value

    @field_validator("missing_videos")
    @classmethod
    def _normalise(cls, value: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _missing_videos_exist(self) -> SynthParams:
        last_filmed = min(self.subjects, df.LAST_SUBJECT_WITH_VIDEO)
        for subject, trial in self.missing_videos:
            name = f"{df.subject_tag(subject)}_trial{trial:02d}"
            if not 1 <= subject <= last_filmed:
                raise ValueError(
                    f"missing_videos names {name}, but only subjects 1..{last_filmed} have face "
                    f"videos here (subjects={self.subjects}; DEAP filmed subjects "
                    f"1..{df.LAST_SUBJECT_WITH_VIDEO})"
                )
            if not 1 <= trial <= self.trials:
                raise ValueError(
                    f"missing_videos names {name}, but trials run 1..{self.trials}"
                )
        return self

    @property
    def n_samples(self) -> int:
        return df.SFREQ * (df.BASELINE_SECONDS + self.seconds)

    @property
    def video_seconds(self) -> float:
        return float(self.seconds + (df.BASELINE_SECONDS if self.video_start == "baseline" else 0))

    @property
    def video_frames(self) -> int:
        return round(self.video_seconds * self.fps)


class SynthReport(BaseModel):
    """What ``write_synthetic_deap`` wrote, for the CLI to show."""

    out: Path
    params: SynthParams
    files: list[Path] = Field(description="written files, relative to out, sorted")
    total_bytes: int
    seconds: float


# ---------------------------------------------------------------------------------------------
# Seeded streams and the per-subject design (ratings, order, schedule)

_STREAM_DESIGN, _STREAM_LAYOUT, _STREAM_EEG, _STREAM_EOG, _STREAM_PERIPHERAL = range(5)
_STREAM_SCENE, _STREAM_FACE, _STREAM_BDF = 5, 6, 7


def _rng(seed: int, subject: int, stream: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, subject, stream, *more])


@dataclass(frozen=True)
class _Design:
    ratings: np.ndarray  # (T, 4), Experiment_id order
    presentation_order: np.ndarray  # (T,) Trial of each Experiment_id
    start_time_us: np.ndarray  # (T,) Experiment_id order
    familiarity: np.ndarray | None  # (T,) Experiment_id order; None = blank column


def _subject_design(subject: int, params: SynthParams) -> _Design:
    rng = _rng(params.seed, subject, _STREAM_DESIGN)
    t = params.trials
    # Quadrant k: bit 1 = high arousal, bit 0 = high valence (HAHV, HALV, LAHV, LALV cycle).
    quadrants = rng.permutation(np.resize([3, 2, 1, 0], t))
    high_valence, high_arousal = (quadrants & 1) == 1, (quadrants & 2) == 2

    def away_from_threshold(high: np.ndarray) -> np.ndarray:
        return np.where(high, rng.uniform(5.4, 8.8, t), rng.uniform(1.5, 4.6, t))

    raw = np.column_stack([
        away_from_threshold(high_valence),
        away_from_threshold(high_arousal),
        rng.uniform(1.0, 9.0, t),
        rng.uniform(1.0, 9.0, t),
    ])  # fmt: skip
    # rint(x*100)/100 is the double nearest to the 2-decimal string the CSV shows, so the .dat
    # labels and the CSV parse to identical floats.
    ratings = np.round(raw, 2)
    order = rng.permutation(t) + 1
    familiarity = rng.integers(1, 6, t)
    trial_gap_s = 5 + df.BASELINE_SECONDS + params.seconds + 15 + rng.uniform(0, 5, t)
    first_us = 1.6e6 + rng.uniform(0, 2e5)
    offsets_s = np.concatenate([[0.0], np.cumsum(trial_gap_s[:-1])])
    starts_by_trial = np.round(first_us + 1e6 * offsets_s)
    return _Design(
        ratings=ratings,
        presentation_order=order,
        start_time_us=starts_by_trial.astype(np.int64)[order - 1],
        familiarity=None if subject in FAMILIARITY_BLANK_PARTICIPANTS else familiarity,
    )


# ---------------------------------------------------------------------------------------------
# Signal building blocks


def _highpass(f: np.ndarray, corner: float, order: int) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(1.0 + (corner / f) ** (2 * order))


def _lowpass(f: np.ndarray, corner: float, order: int) -> np.ndarray:
    return 1.0 / np.sqrt(1.0 + (f / corner) ** (2 * order))


def _shaped_noise(rng: np.random.Generator, amplitude: np.ndarray, k: int, n: int) -> np.ndarray:
    """(k, n) Gaussian noise with amplitude spectrum ``amplitude`` (rfft bins, (k or 1, n//2+1))."""
    spectrum = np.fft.rfft(rng.standard_normal((k, n)), axis=-1) * amplitude
    return np.fft.irfft(spectrum, n=n, axis=-1)


def _unit_std(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    return x / x.std(axis=-1, keepdims=True)


def _bursty(
    rng: np.random.Generator, amplitude: np.ndarray, k: int, n: int, sigma: float, sfreq: float
) -> np.ndarray:
    """Band-limited noise times a log-normal slow envelope: independent, super-Gaussian sources."""
    f = np.fft.rfftfreq(n, 1 / sfreq)
    carrier = _shaped_noise(rng, amplitude, k, n)
    slow = _unit_std(_shaped_noise(rng, np.exp(-(f**2) / (2 * 0.25**2)), k, n))
    return _unit_std(carrier * np.exp(sigma * slow))


def _sinusoid(
    rng: np.random.Generator, tau: np.ndarray, period_range: tuple[float, float]
) -> np.ndarray:
    period = rng.uniform(*period_range)
    return np.sin(2 * np.pi * tau / period + rng.uniform(0, 2 * np.pi))


def _blob(centre: tuple[float, float], width: float) -> np.ndarray:
    xy = np.array([_CHANNEL_XY[c] for c in df.EEG_CHANNELS])
    return np.exp(-np.sum((xy - centre) ** 2, axis=1) / (2 * width**2))


def _ramp(n: int, sfreq: float) -> np.ndarray:
    """0 during the baseline, rising linearly to 1 over RAMP_SECONDS after it."""
    tau = np.arange(n) / sfreq
    return np.clip((tau - df.BASELINE_SECONDS) / RAMP_SECONDS, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# EEG


@dataclass(frozen=True)
class _Layout:
    """Per-subject constants: spatial patterns, rhythm frequencies, physiological rates."""

    background: np.ndarray  # (32, 23)
    alpha: np.ndarray  # (32, 4): posterior L, posterior R, frontal L, frontal R
    beta: np.ndarray  # (32, 3)
    alpha_hz: np.ndarray  # (4,)
    blink_hz: float
    saccade_hz: float
    gsr_us: float
    breath_hz: float
    pulse_hz: float
    temperature_c: float


_N_BACKGROUND, _N_BETA = 20, 3
_BACKGROUND_RMS_UV = 18.0
_POSTERIOR_ALPHA_UV, _POSTERIOR_FLOOR = 14.0, 0.3
_FRONTAL_ALPHA_UV = 9.0
_BETA_UV = 6.0
_SENSOR_NOISE_UV = 1.0
_EOG_NOISE_UV = 2.0


def _layout(subject: int, params: SynthParams) -> _Layout:
    rng = _rng(params.seed, subject, _STREAM_LAYOUT)
    centres = rng.uniform(-1, 1, (_N_BACKGROUND, 2))
    widths = rng.uniform(0.35, 0.7, _N_BACKGROUND)
    signs = rng.choice([-1.0, 1.0], _N_BACKGROUND)
    background = np.column_stack(
        [s * _blob(tuple(c), w) for c, w, s in zip(centres, widths, signs, strict=True)]
    )
    background *= _BACKGROUND_RMS_UV / np.sqrt(np.mean(np.sum(background**2, axis=1)))

    def posterior(x: float) -> np.ndarray:
        blob = _blob((x, -0.85), 0.45)
        return _POSTERIOR_ALPHA_UV * (_POSTERIOR_FLOOR + (1 - _POSTERIOR_FLOOR) * blob)

    def only(names: tuple[str, ...]) -> np.ndarray:
        return _FRONTAL_ALPHA_UV * np.isin(df.EEG_CHANNELS, names).astype(float)

    alpha = np.column_stack(
        [posterior(-0.3), posterior(0.3), only(LEFT_FRONTAL), only(RIGHT_FRONTAL)]
    )
    beta_centres = rng.uniform(-0.8, 0.8, (_N_BETA, 2))
    beta_blobs = np.column_stack([0.5 + 0.5 * _blob(tuple(c), 0.6) for c in beta_centres])
    beta = _BETA_UV * beta_blobs
    return _Layout(
        background=background,
        alpha=alpha,
        beta=beta,
        alpha_hz=10.0 + rng.uniform(-0.5, 0.5, 4),
        blink_hz=rng.uniform(0.2, 0.5),
        saccade_hz=rng.uniform(0.5, 1.0),
        gsr_us=rng.uniform(2.0, 8.0),
        breath_hz=rng.uniform(0.2, 0.3),
        pulse_hz=rng.uniform(1.0, 1.4),
        temperature_c=rng.uniform(32.0, 34.0),
    )


def rhythm_gains(*, valence: float, arousal: float) -> dict[str, float]:
    """Amplitude gains of the rhythm sources for one trial's ratings (see module docstring)."""
    alpha = 1.0 + ALPHA_AROUSAL_SLOPE * (arousal - 5.0)
    return {
        "alpha": alpha,
        "beta": 1.0 + BETA_AROUSAL_SLOPE * (arousal - 5.0),
        "frontal_left": alpha * (1.0 - ASYMMETRY_VALENCE_SLOPE * (valence - 5.0)),
        "frontal_right": alpha * (1.0 + ASYMMETRY_VALENCE_SLOPE * (valence - 5.0)),
    }


def _clean_eeg(
    rng: np.random.Generator, layout: _Layout, valence: float, arousal: float, n: int
) -> np.ndarray:
    sfreq = float(df.SFREQ)
    f = np.fft.rfftfreq(n, 1 / sfreq)
    with np.errstate(divide="ignore"):
        pink = np.where(f > 0, 1 / np.sqrt(f), 0.0) * _highpass(f, 4.0, 4) * _lowpass(f, 45.0, 8)
    alpha_spectra = np.exp(-((f - layout.alpha_hz[:, None]) ** 2) / (2 * 0.8**2))
    beta_spectrum = _highpass(f, 13.0, 6) * _lowpass(f, 30.0, 6)

    background = _bursty(rng, pink, _N_BACKGROUND, n, 0.4, sfreq)
    alpha = _bursty(rng, alpha_spectra, 4, n, 0.5, sfreq)
    beta = _bursty(rng, beta_spectrum, _N_BETA, n, 0.5, sfreq)

    gains = rhythm_gains(valence=valence, arousal=arousal)
    ramp = _ramp(n, sfreq)
    target_alpha = np.array(
        [gains["alpha"], gains["alpha"], gains["frontal_left"], gains["frontal_right"]]
    )
    alpha *= 1.0 + (target_alpha[:, None] - 1.0) * ramp
    beta *= 1.0 + (gains["beta"] - 1.0) * ramp
    noise = _SENSOR_NOISE_UV * rng.standard_normal((len(df.EEG_CHANNELS), n))
    return layout.background @ background + layout.alpha @ alpha + layout.beta @ beta + noise


# ---------------------------------------------------------------------------------------------
# EOG and peripheral channels


def _event_times(
    rng: np.random.Generator, rate_hz: float, refractory_s: float, duration_s: float
) -> np.ndarray:
    mean_gap = max(1.0 / rate_hz - refractory_s, 0.05)
    gaps = refractory_s + rng.exponential(mean_gap, int(duration_s * rate_hz * 3) + 8)
    times = rng.uniform(0, 1.0 / rate_hz) + np.concatenate([[0.0], np.cumsum(gaps)])
    return times[times < duration_s]


def _eog(rng: np.random.Generator, layout: _Layout, n: int) -> np.ndarray:
    """(2, n): hEOG saccade steps, vEOG blinks."""
    sfreq = float(df.SFREQ)
    duration = n / sfreq
    veog = np.zeros(n)
    for onset in _event_times(rng, layout.blink_hz, 0.8, duration):
        width = int(round(rng.uniform(0.25, 0.35) * sfreq))
        start = int(round(onset * sfreq))
        shape = rng.uniform(100.0, 200.0) * np.hanning(width + 2)[1:-1]
        stop = min(start + width, n)
        veog[start:stop] += shape[: stop - start]

    saccades = _event_times(rng, layout.saccade_hz, 0.2, duration)
    levels = rng.uniform(-80.0, 80.0, len(saccades) + 1)
    knot_t = np.concatenate([[0.0], np.column_stack([saccades, saccades + 0.04]).ravel()])
    knot_v = np.concatenate([[levels[0]], np.column_stack([levels[:-1], levels[1:]]).ravel()])
    heog = np.interp(np.arange(n) / sfreq, knot_t, knot_v)
    return np.stack([heog, veog])


def _peripheral(rng: np.random.Generator, layout: _Layout, n: int) -> np.ndarray:
    """(6, n): zEMG, tEMG, GSR, respiration, plethysmograph, temperature."""
    sfreq = float(df.SFREQ)
    tau = np.arange(n) / sfreq
    f = np.fft.rfftfreq(n, 1 / sfreq)

    def emg() -> np.ndarray:
        band = _highpass(f, 20.0, 4) * _lowpass(f, 60.0, 4)
        carrier = _unit_std(_shaped_noise(rng, band, 1, n))[0]
        envelope = np.full(n, 2.0)
        for onset in _event_times(rng, 0.15, 1.0, n / sfreq):
            length = int(rng.uniform(0.5, 2.0) * sfreq)
            start = int(onset * sfreq)
            envelope[start : start + length] += 30.0 * np.hanning(length)[: n - start]
        return carrier * envelope

    def slow(period_range: tuple[float, float]) -> np.ndarray:
        # Sum of 3 sinusoids: drifts on minute scales even in a 6 s trial, too short for FFT
        # shaping at such low frequencies.
        return sum(_sinusoid(rng, tau, period_range) for _ in range(3)) / np.sqrt(1.5)

    breath_phase = 2 * np.pi * np.cumsum(layout.breath_hz * (1 + 0.1 * slow((15.0, 40.0)))) / sfreq
    pulse_phase = np.mod(np.cumsum(layout.pulse_hz * (1 + 0.03 * slow((10.0, 30.0)))) / sfreq, 1.0)
    pulse = np.exp(-((pulse_phase - 0.2) ** 2) / (2 * 0.05**2))
    pulse += 0.4 * np.exp(-((pulse_phase - 0.45) ** 2) / (2 * 0.07**2))
    return np.stack([
        emg(),
        emg(),
        layout.gsr_us + 0.2 * slow((30.0, 120.0)) + 0.01 * tau,
        1000.0 + 300.0 * np.sin(breath_phase),
        500.0 + 1000.0 * pulse,
        layout.temperature_c + 0.05 * slow((60.0, 300.0)),
    ])  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Public ground truth of the signals


@dataclass(frozen=True)
class SubjectSignals:
    """Everything planted in one subject's ``.dat``; arrays are in Experiment_id order."""

    subject: int
    ratings: np.ndarray
    """(T, 4) valence, arousal, dominance, liking; equal to the ``.dat`` labels and the CSV."""
    presentation_order: np.ndarray
    """(T,) ``Trial`` (1-based presentation order) of Experiment_id 1..T."""
    start_time_us: np.ndarray
    """(T,) ``Start_time`` of Experiment_id 1..T."""
    familiarity: np.ndarray | None
    """(T,) integers 1..5, or None where the real file leaves the column blank."""
    clean_eeg: np.ndarray
    """(T, 32, n) µV, before the EOG leak."""
    eog: np.ndarray
    """(T, 2, n) µV, hEOG and vEOG without the channel noise."""
    eog_mixing: np.ndarray
    """(32, 2), ``EOG_MIXING``."""
    data: np.ndarray
    """(T, 40, n) float64: what ``sNN.dat`` holds."""

    @property
    def experiment_order(self) -> np.ndarray:
        """(T,) Experiment_id shown at Trial 1..T."""
        return np.argsort(self.presentation_order) + 1


def subject_signals(*, subject: int, params: SynthParams) -> SubjectSignals:
    """The deterministic ground truth of one subject (independent of ``params.subjects``)."""
    if not 1 <= subject <= MAX_SUBJECTS:
        raise ValueError(f"subject must be 1..{MAX_SUBJECTS}, got {subject}")
    design = _subject_design(subject, params)
    layout = _layout(subject, params)
    n, t = params.n_samples, params.trials
    clean = np.empty((t, len(df.EEG_CHANNELS), n))
    eog = np.empty((t, 2, n))
    eog_rows = np.empty((t, 2, n))
    peripheral = np.empty((t, 6, n))
    for e in range(t):
        experiment = e + 1
        valence, arousal = design.ratings[e, :2]
        eeg_rng = _rng(params.seed, subject, _STREAM_EEG, experiment)
        clean[e] = _clean_eeg(eeg_rng, layout, valence, arousal, n)
        eog_rng = _rng(params.seed, subject, _STREAM_EOG, experiment)
        eog[e] = _eog(eog_rng, layout, n)
        eog_rows[e] = eog[e] + _EOG_NOISE_UV * eog_rng.standard_normal((2, n))
        peripheral_rng = _rng(params.seed, subject, _STREAM_PERIPHERAL, experiment)
        peripheral[e] = _peripheral(peripheral_rng, layout, n)
    mixing = EOG_MIXING.copy()
    data = np.concatenate([clean + mixing @ eog, eog_rows, peripheral], axis=1)
    return SubjectSignals(
        subject=subject,
        ratings=design.ratings,
        presentation_order=design.presentation_order,
        start_time_us=design.start_time_us,
        familiarity=design.familiarity,
        clean_eeg=clean,
        eog=eog,
        eog_mixing=mixing,
        data=data,
    )


# ---------------------------------------------------------------------------------------------
# Face video: ground truth per frame


@dataclass(frozen=True)
class FaceTruth:
    """Per-frame truth of one face video (frame i of the file is row i)."""

    subject: int
    experiment_id: int
    fps: float
    times: np.ndarray
    """(F,) trial time tau (s since the start of the baseline) shown by each frame."""
    boxes: np.ndarray
    """(F, 4) float64 face box x, y, w, h in pixels of the 720x576 frame."""
    occluded: np.ndarray
    """(F,) bool: the face is hidden behind an opaque ``OCCLUDER_BGR`` rectangle."""
    occluders: np.ndarray
    """(F, 4) int64 x, y, w, h of that rectangle (zeros where not occluded)."""
    photo_boxes: np.ndarray
    """(F, 4) int64 x, y, w, h where the head crop of the photograph is pasted."""
    brightness: np.ndarray
    """(F,) lighting gain."""
    tint_bgr: np.ndarray
    """(F, 3) colour multipliers (B, G, R): the valence cue."""
    contrast: np.ndarray
    """(F,) contrast about grey 128: the arousal cue."""

    @property
    def n_frames(self) -> int:
        return len(self.times)


def face_truth(*, subject: int, experiment_id: int, params: SynthParams) -> FaceTruth:
    """Where the face is in every frame of the video of ``experiment_id``, and what hides it."""
    if not 1 <= subject <= df.LAST_SUBJECT_WITH_VIDEO:
        last = df.LAST_SUBJECT_WITH_VIDEO
        raise ValueError(f"subject {subject} has no face video (only 1..{last})")
    if not 1 <= experiment_id <= params.trials:
        raise ValueError(f"experiment_id must be 1..{params.trials}, got {experiment_id}")
    rng = _rng(params.seed, subject, _STREAM_FACE, experiment_id)
    offset = 0.0 if params.video_start == "baseline" else float(df.BASELINE_SECONDS)
    tau = offset + np.arange(params.video_frames) / params.fps

    crop_x, crop_y, crop_w, crop_h = PHOTO_CROP
    face_x, face_y, face_w, face_h = PHOTO_FACE_BOX
    centre_x = FRAME_W / 2 + 110.0 * _sinusoid(rng, tau, (9.0, 14.0))
    centre_y = FRAME_H / 2 + 45.0 * _sinusoid(rng, tau, (6.0, 10.0))
    scale = BASE_FACE_HEIGHT / face_h * (1.0 + 0.2 * _sinusoid(rng, tau, (12.0, 20.0)))
    brightness = 1.0 + 0.15 * _sinusoid(rng, tau, (7.0, 12.0))

    w = np.round(crop_w * scale).astype(np.int64)
    h = np.round(crop_h * scale).astype(np.int64)
    x = np.round(centre_x - w / 2).astype(np.int64)
    y = np.round(centre_y - h / 2).astype(np.int64)
    sx, sy = w / crop_w, h / crop_h  # the scale the integer paste size really applies
    boxes = np.column_stack(
        [x + (face_x - crop_x) * sx, y + (face_y - crop_y) * sy, face_w * sx, face_h * sy]
    )

    fractions = np.array([rng.uniform(0.2, 0.4), rng.uniform(0.6, 0.8)])
    playback = df.BASELINE_SECONDS + params.seconds * fractions
    length = max(OCCLUSION_SECONDS, 1.0 / params.fps)
    occluded = np.any((tau[:, None] >= playback) & (tau[:, None] < playback + length), axis=1)
    grow = OCCLUDER_GROW * boxes[:, 2:]
    x0y0 = np.maximum(np.floor(boxes[:, :2] - grow), 0)
    x1y1 = np.minimum(np.ceil(boxes[:, :2] + boxes[:, 2:] + grow), [FRAME_W, FRAME_H])
    rectangles = np.column_stack([x0y0, x1y1 - x0y0])
    occluders = np.where(occluded[:, None], rectangles, 0).astype(np.int64)

    valence, arousal = _subject_design(subject, params).ratings[experiment_id - 1, :2]
    cue = tau >= df.BASELINE_SECONDS
    warm = TINT_VALENCE_SLOPE * (valence - 5.0)
    tint = np.where(cue[:, None], [1.0 - warm, 1.0, 1.0 + warm], 1.0)
    contrast = np.where(cue, 1.0 + CONTRAST_AROUSAL_SLOPE * (arousal - 5.0), 1.0)
    return FaceTruth(
        subject=subject,
        experiment_id=experiment_id,
        fps=params.fps,
        times=tau,
        boxes=boxes,
        occluded=occluded,
        occluders=occluders,
        photo_boxes=np.column_stack([x, y, w, h]),
        brightness=brightness,
        tint_bgr=tint,
        contrast=contrast,
    )


# ---------------------------------------------------------------------------------------------
# Face video: rendering


def _smooth_field(rng: np.random.Generator, cell: int) -> np.ndarray:
    """(H, W) unit-std noise with features about ``cell`` pixels wide."""
    rows, cols = FRAME_H // cell + 3, FRAME_W // cell + 3
    coarse = rng.standard_normal((rows, cols)).astype(np.float32)
    fine = cv2.resize(coarse, (cols * cell, rows * cell), interpolation=cv2.INTER_CUBIC)
    window = fine[cell : cell + FRAME_H, cell : cell + FRAME_W]
    return _unit_std(window.ravel()).reshape(FRAME_H, FRAME_W)


@lru_cache(maxsize=4)
def _background(seed: int, subject: int) -> np.ndarray:
    """The subject's static scene: mid-grey, smooth texture, vignette, slight colour cast."""
    rng = _rng(seed, subject, _STREAM_SCENE)
    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)
    dx, dy = (xx - FRAME_W / 2) / (FRAME_W / 2), (yy - FRAME_H / 2) / (FRAME_H / 2)
    vignette = 1.0 - 0.35 * (dx**2 + dy**2)
    level = rng.uniform(85, 105)
    grey = (level + 14 * _smooth_field(rng, 96) + 5 * _smooth_field(rng, 24)) * vignette
    cast = rng.uniform(0.95, 1.05, 3)
    image = np.clip(grey[:, :, None] * cast, 0, 255).astype(np.uint8)
    image.flags.writeable = False
    return image


@lru_cache(maxsize=1)
def _photo() -> tuple[np.ndarray, np.ndarray]:
    """The head crop (BGR; lightly blurred, as the upscaled face then costs ~20 % fewer bytes per
    frame) and its feathered alpha mask."""
    from skimage.data import astronaut

    x, y, w, h = PHOTO_CROP
    bgr = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    crop = cv2.GaussianBlur(bgr, (0, 0), 0.8)[y : y + h, x : x + w].copy()
    feather = 8
    ramp_x = np.clip(np.minimum(np.arange(w), np.arange(w)[::-1]) / feather, 0, 1)
    ramp_y = np.clip(np.minimum(np.arange(h), np.arange(h)[::-1]) / feather, 0, 1)
    mask = np.outer(ramp_y, ramp_x).astype(np.float32)
    return crop, mask


def _colour_lut(brightness: float, contrast: float, tint_bgr: np.ndarray) -> np.ndarray:
    level = np.arange(256, dtype=np.float64)[:, None]
    out = tint_bgr[None, :] * (contrast * (brightness * level - 128.0) + 128.0)
    return np.clip(np.round(out), 0, 255).astype(np.uint8).reshape(1, 256, 3)


def render_video_frames(
    *, subject: int, experiment_id: int, params: SynthParams
) -> Iterator[np.ndarray]:
    """The BGR frames, before compression, of the video of ``experiment_id``."""
    truth = face_truth(subject=subject, experiment_id=experiment_id, params=params)
    return _render(truth, _background(params.seed, subject))


def _render(truth: FaceTruth, background: np.ndarray) -> Iterator[np.ndarray]:
    crop, mask = _photo()
    for i in range(truth.n_frames):
        frame = background.copy()
        x, y, w, h = (int(v) for v in truth.photo_boxes[i])
        patch = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
        alpha = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        region = frame[y : y + h, x : x + w]
        frame[y : y + h, x : x + w] = cv2.blendLinear(patch, region, alpha, 1.0 - alpha)
        lut = _colour_lut(truth.brightness[i], truth.contrast[i], truth.tint_bgr[i])
        frame = cv2.LUT(frame, lut)
        if truth.occluded[i]:
            ox, oy, ow, oh = (int(v) for v in truth.occluders[i])
            cv2.rectangle(frame, (ox, oy), (ox + ow - 1, oy + oh - 1), OCCLUDER_BGR, thickness=-1)
        yield frame


# ---------------------------------------------------------------------------------------------
# Writing files


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Write to a sibling temp name and rename on success, so an interrupted run leaves no file that
    looks complete (the temp keeps the suffix: FFmpeg picks the container from it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_video(
    path: Path, frames: Iterator[np.ndarray], n_frames: int, params: SynthParams
) -> None:
    with _atomic(path) as tmp:
        fourcc = cv2.VideoWriter_fourcc(*params.codec)
        writer = cv2.VideoWriter(str(tmp), cv2.CAP_FFMPEG, fourcc, params.fps, (FRAME_W, FRAME_H))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV's FFmpeg backend cannot write {params.codec} to {path}")
        try:
            for frame in frames:
                writer.write(frame)
        finally:
            writer.release()
        _check_video(tmp, n_frames, params.fps)


def _check_video(path: Path, n_frames: int, fps: float) -> None:
    capture = cv2.VideoCapture(str(path))
    try:
        found = (
            int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
            capture.get(cv2.CAP_PROP_FPS),
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()
    if found[0] != n_frames or abs(found[1] - fps) > 1e-3 * fps or found[2:] != (FRAME_W, FRAME_H):
        raise RuntimeError(
            f"{path} reads back as {found[0]} frames at {found[1]} fps, {found[2]}x{found[3]}; "
            f"expected {n_frames} frames at {fps} fps, {FRAME_W}x{FRAME_H}"
        )


def _write_dat(path: Path, signals: SubjectSignals) -> None:
    with _atomic(path) as tmp, tmp.open("wb") as f:
        _dump_python2_pickle(f, {"data": signals.data, "labels": signals.ratings})


def _py2_str(raw: bytes) -> bytes:
    if len(raw) < 256:
        return pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw
    return pickle.BINSTRING + struct.pack("<i", len(raw)) + raw


def _py2_int(value: int) -> bytes:
    if 0 <= value < 256:
        return pickle.BININT1 + bytes([value])
    return pickle.BININT + struct.pack("<i", value)


def _dump_python2_pickle(f: BinaryIO, content: dict[str, np.ndarray]) -> None:
    """Write ``content`` (float64 arrays) as Python 2's cPickle protocol 2 wrote DEAP's files.

    Python 3's ``pickle.dump(protocol=2)`` stores bytes as latin-1 text (1.45x larger) and loads
    without ``encoding="latin1"``; DEAP's real files store Python 2 ``str`` (BINSTRING) and
    reference ``numpy.core.multiarray``, so they load only with ``encoding="latin1"`` and raise
    UnicodeDecodeError otherwise. Readers must meet that here too.
    """
    f.write(pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.MARK)
    for key, value in content.items():
        array = np.ascontiguousarray(value, dtype="<f8")
        f.write(b"".join([
            _py2_str(key.encode("ascii")),
            pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n",
            pickle.GLOBAL + b"numpy\nndarray\n", _py2_int(0), pickle.TUPLE1, _py2_str(b"b"),
            pickle.TUPLE3, pickle.REDUCE,
            # __setstate__ args: (version, shape, dtype, is_fortran, raw data)
            pickle.MARK, _py2_int(1),
            pickle.MARK, *(_py2_int(d) for d in array.shape), pickle.TUPLE,
            pickle.GLOBAL + b"numpy\ndtype\n", _py2_str(b"f8"), _py2_int(0), _py2_int(1),
            pickle.TUPLE3, pickle.REDUCE,
            pickle.MARK, _py2_int(3), _py2_str(b"<"), pickle.NONE, pickle.NONE, pickle.NONE,
            _py2_int(-1), _py2_int(-1), _py2_int(0), pickle.TUPLE, pickle.BUILD,
            pickle.NEWFALSE,
        ]))  # fmt: skip
        f.write(pickle.BINSTRING + struct.pack("<i", array.nbytes))
        f.write(memoryview(array).cast("B"))
        f.write(pickle.TUPLE + pickle.BUILD)
    f.write(pickle.SETITEMS + pickle.STOP)


def _ratings_lines(subject: int, params: SynthParams) -> list[str]:
    design = _subject_design(subject, params)
    lines = []
    for experiment in np.argsort(design.presentation_order) + 1:
        e = experiment - 1
        familiarity = "" if design.familiarity is None else str(design.familiarity[e])
        fields = [subject, design.presentation_order[e], experiment, design.start_time_us[e]]
        ratings = [f"{r:.2f}" for r in design.ratings[e]]
        lines.append(",".join([*(str(int(v)) for v in fields), *ratings, familiarity]))
    return lines


def _write_text(path: Path, text: str) -> None:
    with _atomic(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def write_synthetic_deap(
    *, out: Path, params: SynthParams, progress: Callable[[str], None] | None = None
) -> SynthReport:
    """Write a synthetic DEAP folder under ``out`` (created if needed; files of the same name are
    replaced, others left alone)."""
    started = time.perf_counter()
    out = Path(out)
    say = progress or (lambda _line: None)
    written: list[Path] = []

    for subject in range(1, params.subjects + 1):
        tag = df.subject_tag(subject)
        signals = subject_signals(subject=subject, params=params)
        dat = out / df.PREPROCESSED_DIR / df.dat_name(subject)
        _write_dat(dat, signals)
        written.append(dat)
        shape = f"{params.trials} trials x {df.N_CHANNELS} channels x {params.n_samples} samples"
        say(f"{tag}: wrote {dat.relative_to(out)} ({shape})")
        experiment_order = signals.experiment_order
        if params.bdf:
            bdf = out / df.ORIGINAL_DIR / df.bdf_name(subject)
            write_subject_bdf(bdf, signals=signals, params=params)
            written.append(bdf)
            say(f"{tag}: wrote {bdf.relative_to(out)} (48 channels at {df.BDF_SFREQ} Hz)")
        del signals  # the videos need only the order; free ~200 MB at full shape
        if params.videos and subject <= df.LAST_SUBJECT_WITH_VIDEO:
            written += _write_subject_videos(out, subject, experiment_order, params, say)

    csv_path = out / df.METADATA_DIR / df.RATINGS_FILE
    lines = [df.RATINGS_HEADER_LINE]
    for subject in range(1, params.subjects + 1):
        lines += _ratings_lines(subject, params)
    _write_text(csv_path, "\n".join(lines) + "\n")
    written.append(csv_path)
    say(f"wrote {csv_path.relative_to(out)} ({len(lines) - 1} rows)")

    # Last: a manifest means the generator finished.
    manifest = out / MANIFEST_NAME
    _write_text(manifest, json.dumps(_manifest(params), indent=2) + "\n")
    written.append(manifest)

    return SynthReport(
        out=out,
        params=params,
        files=sorted(p.relative_to(out) for p in written),
        total_bytes=sum(p.stat().st_size for p in written),
        seconds=time.perf_counter() - started,
    )


def _write_subject_videos(
    out: Path,
    subject: int,
    experiment_order: np.ndarray,
    params: SynthParams,
    say: Callable[[str], None],
) -> list[Path]:
    tag = df.subject_tag(subject)
    background = _background(params.seed, subject)
    written: list[Path] = []
    for trial, experiment in enumerate(experiment_order, start=1):
        name = df.video_name(subject, trial)
        if (subject, trial) in params.missing_videos:
            say(f"{tag}: skipped {name} (listed in missing_videos)")
            continue
        truth = face_truth(subject=subject, experiment_id=int(experiment), params=params)
        path = out / df.VIDEO_DIR / tag / name
        _write_video(path, _render(truth, background), truth.n_frames, params)
        written.append(path)
        say(f"{tag}: wrote {name} ({trial}/{params.trials}, {truth.n_frames} frames)")
    return written


# ---------------------------------------------------------------------------------------------
# Raw BDF recordings (data_original/sNN.bdf)

BDF_PHYSICAL_RANGE_UV = (-262144.0, 262143.0)
"""BioSemi's range for every analogue channel: 24-bit, 1/32 µV per step."""
STATUS_RANGE = (-8388608, 8388607)
"""Physical = digital range of the Status channel, so its digital values are the codes."""
STATUS_HIGH_BITS = 0x1E0000
"""Offset written into the high bits of the Status channel of participants >= 24 (DEAP's 24-32
carry such offsets; readers must mask the low 8 bits)."""
STATUS_OFFSET_FROM = 24
STATUS_PULSE_SECONDS = 1 / 64
BDF_REST_SECONDS = 10
"""The recording's 2-min resting baseline, shortened here to keep files small."""
_FILLER_EEG_UV = 8.0
_REFERENCE_DRIFT_UV, _REFERENCE_LINE_UV = 40.0, 3.0


@dataclass(frozen=True)
class BdfTimeline:
    """Where each trial lies in a synthetic BDF (samples at 128 Hz, presentation order)."""

    playback: np.ndarray  # (T,) code-4 sample of Trial 1..T
    events: list[tuple[int, int]]  # (sample, code), time order
    n_samples: int  # whole seconds


def bdf_timeline(*, subject: int, params: SynthParams) -> BdfTimeline:
    """The status timeline: 1 start, 1 rest, then per trial 2 sync, 3 fixation 5 s before
    playback, 4 playback, 5 three s of fixation after it, 1 rating screen; 7 at the end."""
    rng = _rng(params.seed, subject, _STREAM_BDF)
    fs = df.SFREQ
    events = [(1 * fs, df.STATUS_CODES["start"]), (2 * fs, df.STATUS_CODES["start"])]
    cursor = (3 + BDF_REST_SECONDS) * fs
    playback = []
    for _ in range(params.trials):
        events.append((cursor, df.STATUS_CODES["sync"]))
        fixation = cursor + 2 * fs
        onset = fixation + 5 * fs
        events += [(fixation, df.STATUS_CODES["fixation"]), (onset, df.STATUS_CODES["playback"]),
                   (onset + params.seconds * fs, df.STATUS_CODES["after"]),
                   (onset + (params.seconds + 3) * fs, df.STATUS_CODES["start"])]
        playback.append(onset)
        cursor = onset + (params.seconds + 7) * fs + int(rng.integers(0, 2 * fs))
    events.append((cursor, df.STATUS_CODES["end"]))
    n_samples = -(-(cursor + 2 * fs) // fs) * fs
    return BdfTimeline(playback=np.array(playback), events=events, n_samples=n_samples)


def bdf_channels(
    *, signals: SubjectSignals, params: SynthParams, sfreq: int = df.BDF_SFREQ,
    status_offset: int | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels, (47, N) analogue data in µV and the (N,) Status codes of one synthetic BDF.

    The .dat rows of each trial (baseline + playback) are placed on the timeline at 128 Hz in
    presentation order, low-level noise fills the gaps, and the whole is upsampled to ``sfreq``
    (``resample_poly``). Every EEG and EXG channel then gets one common reference signal (slow
    drift + 50 Hz line noise) that a common-average or bipolar reference removes: EXG1 - EXG2 =
    hEOG, EXG3 - EXG4 = vEOG, EXG5 - EXG6 = zEMG, EXG7 - EXG8 = tEMG. EEG in Twente order for
    participants 1-22, Geneva order for 23-32.
    """
    from scipy.signal import resample_poly

    subject = signals.subject
    if sfreq % df.SFREQ:
        raise ValueError(f"sfreq must be a multiple of {df.SFREQ}, got {sfreq}")
    factor = sfreq // df.SFREQ
    timeline = bdf_timeline(subject=subject, params=params)
    rng = _rng(params.seed, subject, _STREAM_BDF, 1)
    n128, n_rows = timeline.n_samples, signals.data.shape[1]
    filler = np.zeros((n_rows, n128))
    filler[:32] = _FILLER_EEG_UV * rng.standard_normal((32, n128))
    filler[32:36] = _EOG_NOISE_UV * rng.standard_normal((4, n128))
    filler[36:] = signals.data[:, 36:].mean(axis=(0, 2))[:, None]
    baseline = df.BASELINE_SAMPLES
    for trial, onset in enumerate(timeline.playback, start=1):
        e = int(np.flatnonzero(signals.presentation_order == trial)[0])
        filler[:, onset - baseline: onset - baseline + signals.data.shape[2]] = signals.data[e]
    upsampled = resample_poly(filler, factor, 1, axis=-1)
    n = upsampled.shape[1]
    t = np.arange(n) / sfreq
    reference = (_REFERENCE_DRIFT_UV * np.sin(2 * np.pi * 0.05 * t + rng.uniform(0, 2 * np.pi))
                 + _REFERENCE_LINE_UV * np.sin(2 * np.pi * 50.0 * t))
    twente = subject <= df.LAST_TWENTE_SUBJECT
    eeg_labels = list(df.TWENTE_EEG_ORDER if twente else df.EEG_CHANNELS)
    eeg = upsampled[[df.EEG_CHANNELS.index(name) for name in eeg_labels]] + reference
    heog, veog, zemg, temg = upsampled[32:36]
    exg = np.stack([reference + heog, reference, reference + veog, reference,
                    reference + zemg, reference, reference + temg, reference])
    gsr, resp, plet, temp = upsampled[36:40]
    erg = 0.5 * rng.standard_normal((2, n))
    other = np.stack([gsr, gsr + 0.01 * rng.standard_normal(n), *erg, resp, plet, temp])
    data = np.concatenate([eeg, exg, other])
    if status_offset is None:
        status_offset = STATUS_HIGH_BITS if subject >= STATUS_OFFSET_FROM else 0
    status = np.full(n, status_offset, dtype=np.int64)
    pulse = max(1, round(STATUS_PULSE_SECONDS * sfreq))
    for sample, code in timeline.events:
        status[sample * factor: sample * factor + pulse] = status_offset + code
    labels = [*eeg_labels, *df.EXG_CHANNELS, *df.BDF_OTHER_CHANNELS]
    return labels, data, status


def write_subject_bdf(
    path: Path, *, signals: SubjectSignals, params: SynthParams, sfreq: int = df.BDF_SFREQ,
    status_offset: int | None = None,
) -> None:
    """Write one synthetic ``sNN.bdf`` (48 channels, 24-bit) with edfio; see :func:`bdf_channels`.

    ``sfreq`` and ``status_offset`` exist for tests of the reader (a wrong rate, offset codes).
    """
    labels, data, status = bdf_channels(signals=signals, params=params, sfreq=sfreq,
                                        status_offset=status_offset)
    write_bdf_file(path, labels=labels, data=data, status=status, sfreq=sfreq)


def write_bdf_file(
    path: Path, *, labels: list[str], data: np.ndarray, status: np.ndarray, sfreq: int,
    status_label: str = "Status",
) -> None:
    """Write analogue channels (µV, BioSemi's range) and a Status channel whose digital values
    are ``status`` (physical = digital range) as a 24-bit BDF, atomically."""
    import datetime

    from edfio import Bdf, BdfSignal

    out = [BdfSignal(np.clip(row, *BDF_PHYSICAL_RANGE_UV), sfreq, label=label,
                     physical_dimension="uV", physical_range=BDF_PHYSICAL_RANGE_UV)
           for label, row in zip(labels, data, strict=True)]
    out.append(BdfSignal(status.astype(np.float64), sfreq, label=status_label,
                         physical_dimension="Boolean", physical_range=STATUS_RANGE,
                         digital_range=STATUS_RANGE))
    bdf = Bdf(out, starttime=datetime.time(0, 0, 0), data_record_duration=1)
    with _atomic(path) as tmp:
        bdf.write(tmp)


def _manifest(params: SynthParams) -> dict[str, object]:
    return {
        "synthetic": True,
        "note": SYNTHETIC_NOTE,
        "generator": "pipeline.synth",
        "generator_version": GENERATOR_VERSION,
        "params": params.model_dump(mode="json"),
    }
