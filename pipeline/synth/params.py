"""What to generate, the seeded random streams, and each subject's ratings and schedule.

Notation (all of ``pipeline.synth``): ``V``, ``A`` = the trial's valence and arousal ratings;
``S`` = ``params.seconds``; trial time ``tau`` = seconds since the start of the 3 s baseline
(sample ``k`` is at ``tau = k / 128``).

Ratings and schedule (per subject)
    Quadrants HAHV, HALV, LAHV, LALV cycle over the T trials, then are shuffled. High ratings are
    uniform in [5.4, 8.8], low ones in [1.5, 4.6] (never near the threshold 5); dominance and
    liking uniform in [1, 9]; all rounded to 2 decimals, and the ``.dat`` labels are exactly those
    rounded values. Familiarity is an integer 1..5, blank for participants 2, 15 and 23 as in the
    real file. ``Trial`` (presentation order) is a seeded permutation of ``Experiment_id``.
    ``Start_time`` (µs): the first Trial at 1.6e6 + U(0, 2e5); each next one
    ``5 + 3 + S + 15 + U(0, 5)`` seconds later (fixation, baseline, video, rating, jitter).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.readers import deap_format as df
from pipeline.synth.difficulty import LEVELS, Difficulty, Level

GENERATOR_VERSION = "1"
"""``generator_version`` of the legacy level ``difficulty="v1"``."""
GENERATOR_V2_VERSION = "2"
"""``generator_version`` of every other level (the default ``easy`` included)."""
DEFAULT_DIFFICULTY: Difficulty = "easy"
"""What a first run gets: generator v2 with its largest, most reliable cues, so heads visibly
learn in minutes (``paper`` is harder, with subjects whose effects reverse)."""
LEGACY_V1 = "v1"
EegFamily = Literal["rhythms", "contact"]
"""``rhythms``: the EEG every default was tuned on; ``contact``: the held-out family
(:mod:`pipeline.synth.family`)."""


class LegacyGeneratorWarning(UserWarning):
    """Generator v1 was asked for: its videos carry a whole-frame colour shortcut and its .dat is
    not common-average referenced (it disagrees with its own BDF)."""
SYNTHETIC_NOTE = (
    "This folder holds SYNTHETIC data in DEAP's file formats, written by pipeline.synth; it holds "
    "no recording of any person (the face is the public-domain photograph "
    "skimage.data.astronaut()), and its planted signals are documented in pipeline/synth/."
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
    difficulty: Difficulty | Literal["v1"] = Field(
        DEFAULT_DIFFICULTY, description="easy (default), paper or hard: generator v2 (see "
        "pipeline.synth.difficulty); v1: the legacy generator, which warns (whole-frame colour "
        "shortcut, one effect size for all, a .dat without CAR that disagrees with its BDF)")
    eeg_family: EegFamily = Field(
        "rhythms", description="rhythms: the EEG the defaults were tuned on; contact: a held-out "
        "family (per-trial, per-channel contact gains, other effects, another background; "
        "generator v2 only; see pipeline.synth.family)")
    format: Literal["dat", "mat"] = Field(
        "dat", description="preprocessed arrays as data_preprocessed_python/sNN.dat (Python 2 "
        "pickle) or as data_preprocessed_matlab/sNN.mat (MATLAB v5), DEAP's two formats")

    @field_validator("missing_videos", mode="before")
    @classmethod
    def _parse_spec(cls, value: object) -> object:
        return parse_missing_videos(value) if isinstance(value, str) else value

    @field_validator("missing_videos")
    @classmethod
    def _normalise(cls, value: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _legacy_level(self) -> SynthParams:
        if self.difficulty == LEGACY_V1:
            if self.eeg_family != "rhythms":
                raise ValueError(f"eeg_family={self.eeg_family!r} needs generator v2 "
                                 "(difficulty easy, paper or hard), not the legacy v1")
            warnings.warn("synthetic DEAP generator v1 (legacy): its videos carry a whole-frame "
                          "colour shortcut and its .dat is not common-average referenced; use "
                          "difficulty easy, paper or hard", LegacyGeneratorWarning, stacklevel=2)
        return self

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
    def level(self) -> Level | None:
        """The v2 knobs, or ``None`` for the legacy generator v1."""
        return None if self.difficulty == LEGACY_V1 else LEVELS[self.difficulty]

    @property
    def generator_version(self) -> str:
        return GENERATOR_VERSION if self.difficulty == LEGACY_V1 else GENERATOR_V2_VERSION

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

# Stream ids: the third seed word of stream_rng, one per independent random draw (values fixed).
_STREAM_DESIGN, STREAM_LAYOUT, STREAM_EEG, STREAM_EOG, STREAM_PERIPHERAL = range(5)
STREAM_SCENE, STREAM_FACE, STREAM_BDF = 5, 6, 7
STREAM_EFFECTS, STREAM_NUISANCE, STREAM_EXPRESSION, STREAM_LOOK = 8, 9, 10, 11  # v2 only
STREAM_CONTACT = 12  # eeg_family="contact" only


def stream_rng(seed: int, subject: int, stream: int, *more: int) -> np.random.Generator:
    """Generator seeded by (seed, subject, stream id, *more): one independent stream per use."""
    return np.random.default_rng([seed, subject, stream, *more])


@dataclass(frozen=True)
class _Design:
    ratings: np.ndarray  # (T, 4), Experiment_id order
    presentation_order: np.ndarray  # (T,) Trial of each Experiment_id
    start_time_us: np.ndarray  # (T,) Experiment_id order
    familiarity: np.ndarray | None  # (T,) Experiment_id order; None = blank column


def subject_design(subject: int, params: SynthParams) -> _Design:
    """The subject's seeded design: ratings, presentation order, start times, familiarity."""
    rng = stream_rng(params.seed, subject, _STREAM_DESIGN)
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
