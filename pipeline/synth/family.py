"""The held-out EEG family (``SynthParams(eeg_family="contact")``): EEG no default was tuned on.

Every default of this project (tokenizers, presets, demo and bench heads) was chosen on the
``rhythms`` family of :mod:`pipeline.synth.signals`. This family keeps the rest of generator v2
(ratings, effect sizes drawn per subject with the level's reversals, the trial nuisance of
:func:`pipeline.synth.signals.nuisance_gains`, EOG, peripheral rows, videos, CAR) and changes the
EEG in three ways, so a method that only works on ``rhythms`` shows it:

Another background spectrum
    16 sources of 1/f amplitude (power ~ f^-2: brown, not pink) from 1 Hz (2nd-order corner)
    to 45 Hz, log-normal envelope sigma 0.3, patterns +-blob of width 0.3-0.6, 20 µV rms over
    channels; sensor noise 1.5 µV.
Another spatial pattern of effects
    - Arousal: a fronto-central theta source (6 Hz +- 0.3 per subject, Gaussian spectrum sd
      1 Hz, a blob at Fz/FC1/FC2 of width 0.4, 10 µV) x ``1 + b (A - 5)``, and two temporal
      gamma sources (32-42 Hz, blobs at T7 and T8 of width 0.3, 5 µV) x ``1 - a (A - 5)``,
      with ``b`` = the subject's beta slope and ``a`` its alpha slope (so both rise with arousal,
      a level's reversed subjects reversed).
    - Valence: parietal alpha lateralisation, two 10 Hz sources on P3/P7/CP5 and P4/P8/CP6
      (9 µV): left x ``1 + c (V - 5)``, right x ``1 - c (V - 5)``, ``c`` the subject's asymmetry
      slope (the opposite sign of the frontal asymmetry of ``rhythms``, elsewhere on the scalp).
    The gains ramp in after the baseline as in ``rhythms``; the trial nuisance multiplies the
    background (its 1st gain), the theta source (2nd), the parietal sources (4th, 5th) and the
    gamma sources (6th).
Per-trial, per-channel contact gains (label-independent)
    Every EEG row of every trial (brain signal and EOG leak alike: the electrode's contact scales
    whatever reaches it) is multiplied by ``exp(CONTACT_SIGMA * N(0, 1))``, drawn per (trial,
    channel) from its own stream, before the common average reference. In log band power this
    adds the same offset to every band of a channel in a trial: a pattern that identifies the
    trial and says nothing of its ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.readers import deap_format as df
from pipeline.synth.params import STREAM_CONTACT, SynthParams, stream_rng
from pipeline.synth.shapes import blob, bursty, highpass, lowpass, ramp

CONTACT_SIGMA = 0.35
"""Std of the log of each (trial, channel) contact gain."""
LEFT_PARIETAL = ("P3", "P7", "CP5")
RIGHT_PARIETAL = ("P4", "P8", "CP6")

_N_BACKGROUND = 16
_BACKGROUND_RMS_UV = 20.0
_THETA_UV, _GAMMA_UV, _PARIETAL_UV = 24.0, 10.0, 11.0
_SENSOR_NOISE_UV = 1.5
_LAYOUT_STREAM, _TRIAL_STREAM = 0, 1  # the fourth seed word under STREAM_CONTACT (+ experiment)


@dataclass(frozen=True)
class ContactLayout:
    """Per-subject spatial patterns of the ``contact`` family."""

    background: np.ndarray  # (32, 16)
    rhythms: np.ndarray  # (32, 5): theta, gamma L, gamma R, parietal L, parietal R
    theta_hz: float


def contact_layout(subject: int, params: SynthParams) -> ContactLayout:
    rng = stream_rng(params.seed, subject, STREAM_CONTACT, _LAYOUT_STREAM)
    centres = rng.uniform(-1, 1, (_N_BACKGROUND, 2))
    widths = rng.uniform(0.3, 0.6, _N_BACKGROUND)
    signs = rng.choice([-1.0, 1.0], _N_BACKGROUND)
    background = np.column_stack(
        [s * blob(tuple(c), w) for c, w, s in zip(centres, widths, signs, strict=True)])
    background *= _BACKGROUND_RMS_UV / np.sqrt(np.mean(np.sum(background**2, axis=1)))

    def only(names: tuple[str, ...]) -> np.ndarray:
        return _PARIETAL_UV * np.isin(df.EEG_CHANNELS, names).astype(float)

    rhythms = np.column_stack([_THETA_UV * blob((0.0, 0.35), 0.4),
                               _GAMMA_UV * blob((-1.0, 0.0), 0.3), _GAMMA_UV * blob((1.0, 0.0), 0.3),
                               only(LEFT_PARIETAL), only(RIGHT_PARIETAL)])
    return ContactLayout(background=background, rhythms=rhythms,
                         theta_hz=6.0 + rng.uniform(-0.3, 0.3))


def contact_rating_gains(*, valence: float, arousal: float, alpha_arousal: float,
                         beta_arousal: float, asymmetry_valence: float) -> np.ndarray:
    """(5,) amplitude gains of theta, gamma L/R, parietal alpha L/R for one trial's ratings."""
    theta = 1.0 + beta_arousal * (arousal - 5.0)
    gamma = 1.0 - alpha_arousal * (arousal - 5.0)
    lateral = asymmetry_valence * (valence - 5.0)
    return np.array([theta, gamma, gamma, 1.0 + lateral, 1.0 - lateral])


def contact_clean_eeg(rng: np.random.Generator, layout: ContactLayout, gains: np.ndarray, n: int,
                      nuisance: np.ndarray | None) -> np.ndarray:
    """(32, n) µV of one trial before the EOG leak and the contact gains."""
    sfreq = float(df.SFREQ)
    f = np.fft.rfftfreq(n, 1 / sfreq)
    with np.errstate(divide="ignore"):
        brown = np.where(f > 0, 1 / f, 0.0) * highpass(f, 1.0, 2) * lowpass(f, 45.0, 8)
    theta_spectrum = np.exp(-((f - layout.theta_hz) ** 2) / (2 * 1.0**2))
    gamma_spectrum = highpass(f, 32.0, 6) * lowpass(f, 42.0, 6)
    alpha_spectrum = np.exp(-((f - 10.0) ** 2) / (2 * 0.8**2))
    background = bursty(rng, brown, _N_BACKGROUND, n, 0.3, sfreq)
    sources = np.concatenate([bursty(rng, theta_spectrum, 1, n, 0.5, sfreq),
                              bursty(rng, gamma_spectrum, 2, n, 0.5, sfreq),
                              bursty(rng, alpha_spectrum, 2, n, 0.5, sfreq)])
    sources *= 1.0 + (gains[:, None] - 1.0) * ramp(n, sfreq)
    if nuisance is not None:
        background *= nuisance[0]
        sources *= nuisance[[1, 5, 5, 3, 4], None]
    noise = _SENSOR_NOISE_UV * rng.standard_normal((len(df.EEG_CHANNELS), n))
    return layout.background @ background + layout.rhythms @ sources + noise


def contact_gains(subject: int, experiment: int, params: SynthParams) -> np.ndarray:
    """(32,) label-independent contact gains of one trial's EEG channels."""
    rng = stream_rng(params.seed, subject, STREAM_CONTACT, _TRIAL_STREAM, experiment)
    return np.exp(CONTACT_SIGMA * rng.standard_normal(len(df.EEG_CHANNELS)))
