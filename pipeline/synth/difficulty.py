"""Synthetic DEAP v2: how hard the planted cues are to find (``SynthParams.difficulty``).

Every level selects v2; ``easy`` is the default (``params.DEFAULT_DIFFICULTY``: the largest, most
reliable cues, for a first run). ``difficulty="v1"`` keeps the legacy generator v1, with a
``LegacyGeneratorWarning``: effects identical across subjects, every source at unit power in every
trial, a whole-frame colour cue (a colour probe that never looks at a face reached 0.88-0.98),
a ``.dat`` that is not common-average referenced (per-channel r 0.53 with its own BDF). v2:

EEG
    - Trial-level nuisance power, label-independent: every source group (background, posterior
      alpha, frontal alpha, beta) is multiplied per trial by ``exp(nuisance_sigma * N(0, 1))``, and
      each frontal alpha source by a further ``exp(asymmetry_noise * N(0, 1))``.
    - Subject-specific effect sizes: the arousal slopes and the asymmetry slope of v1, times
      ``effect_scale`` and a per-subject ``U(0.5, 1.5)``. With ``k = round(1 / reversed_fraction)``,
      every k-th subject (``(subject + seed) % k == 0``) has its frontal asymmetry reversed and
      another every k-th (``== k // 2``) its arousal slopes (alpha up, beta down with arousal), so
      any k consecutive subjects hold both. Within a subject the cue is learnable; a model for all
      subjects, or one meeting a new subject, faces subjects whose effects run the other way.
    - ``sNN.dat`` rows 0..31 are common-average referenced, as DEAP's are; ``data_original/sNN.bdf``
      holds the same recording before that reference (and before resampling).
Face
    - The cue is an expression on the face only: the mouth corners (valence: up for high, down for
      low) and the brows (arousal: raised for high, lowered for low) are displaced by a smooth warp
      of the photograph, in short bursts (Hann, ``burst_seconds`` long, Poisson with ``burst_rate``
      per second of playback), so a 3 s window's 10 sampled frames carry it only sometimes. Each
      burst's mouth direction agrees with the trial's valence class with probability
      ``agreement``, its brow direction with the arousal class with ``brow_agreement``.
    - At the ``paper`` level the face is valence-led: the brows move less and less reliably than
      the mouth, as faces do (facial EMG follows valence, physiology arousal: Lang et al. 1993),
      while the EEG carries arousal (band power) as well as valence (asymmetry). Each modality
      then holds what the other lacks, so fusion has something to gain: with the brows as
      large and reliable as the mouth, the best weighted sum of a face and an EEG linear probe
      (the weight picked in hindsight) beat the face probe by 0.013 (DEAP-4, a pipeline-built
      store), below the fold std.
    - Outside the face nothing depends on the ratings: colour tint, contrast and lighting vary at
      random per trial and slowly within it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Difficulty = Literal["easy", "paper", "hard"]


@dataclass(frozen=True)
class Level:
    """The knobs of one difficulty level (see the module docstring)."""

    effect_scale: float
    nuisance_sigma: float
    asymmetry_noise: float
    reversed_fraction: float
    mouth_px: float
    """Largest displacement of a mouth corner, in pixels of the 512x512 photograph."""
    brow_px: float
    burst_rate: float
    burst_seconds: tuple[float, float]
    agreement: float
    """Probability that a burst's mouth direction matches the valence class."""
    brow_agreement: float
    """Probability that a burst's brow direction matches the arousal class."""


LEVELS: dict[Difficulty, Level] = {
    "easy": Level(effect_scale=1.0, nuisance_sigma=0.15, asymmetry_noise=0.05,
                  reversed_fraction=0.0, mouth_px=7.0, brow_px=5.0, burst_rate=0.6,
                  burst_seconds=(0.6, 1.0), agreement=0.95,
                  brow_agreement=0.95),
    "paper": Level(effect_scale=1.3, nuisance_sigma=0.1, asymmetry_noise=0.04,
                   reversed_fraction=0.2, mouth_px=6.0, brow_px=3.0, burst_rate=0.5,
                   burst_seconds=(0.5, 0.9), agreement=0.9, brow_agreement=0.7),
    "hard": Level(effect_scale=0.5, nuisance_sigma=0.35, asymmetry_noise=0.12,
                  reversed_fraction=0.35, mouth_px=3.5, brow_px=3.0, burst_rate=0.3,
                  burst_seconds=(0.3, 0.6), agreement=0.75,
                  brow_agreement=0.75),
}  # fmt: skip
