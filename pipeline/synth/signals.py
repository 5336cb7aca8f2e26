"""The planted EEG, EOG and peripheral signals of one subject (the rows of ``sNN.dat``).

Notation: ``V``, ``A`` = the trial's valence and arousal ratings; ``S`` = ``params.seconds``; trial
time ``tau`` = seconds since the start of the 3 s baseline (sample ``k`` is at ``tau = k / 128``).

    ``5 + 3 + S + 15 + U(0, 5)`` seconds later (fixation, baseline, video, rating, jitter).

Clean EEG, rows 0..31 (µV), a linear mixture of independent non-Gaussian sources
    Every source is band-limited Gaussian noise times a log-normal amplitude envelope
    ``exp(sigma * g)`` (``g``: unit-variance noise low-passed with a 0.25 Hz Gaussian), then scaled
    to unit std over the whole trial: bursty, excess kurtosis ~2-5 (sigma 0.4) or ~3-8 (sigma
    0.5). The spatial patterns, drawn once per subject, are smooth blobs over approximate 2-D
    electrode positions (``CHANNEL_XY``).

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

    The ``contact`` family (``params.eeg_family``) replaces this EEG: :mod:`pipeline.synth.family`.

    Measured on generator v1 (one effect size for all, no trial nuisance; v2 lowers these: see
    tests/test_synth.py) with Welch band power of samples 384: over 40 trials (worst of 10 seeds for 12 s
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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.readers import deap_format as df
from pipeline.synth.family import (
    contact_clean_eeg,
    contact_gains,
    contact_layout,
    contact_rating_gains,
)
from pipeline.synth.shapes import (
    blob,
    bursty,
    highpass,
    lowpass,
    ramp,
    shaped_noise,
    sinusoid,
    unit_std,
)
from pipeline.synth.params import (
    MAX_SUBJECTS,
    STREAM_EEG,
    STREAM_EFFECTS,
    STREAM_EOG,
    STREAM_LAYOUT,
    STREAM_NUISANCE,
    STREAM_PERIPHERAL,
    SynthParams,
    stream_rng,
    subject_design,
)

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


def _eog_mixing() -> np.ndarray:
    mixing = np.zeros((len(df.EEG_CHANNELS), 2))
    for name, gains in EOG_LEAK.items():
        mixing[df.EEG_CHANNELS.index(name)] = gains
    mixing.flags.writeable = False
    return mixing


EOG_MIXING = _eog_mixing()
"""(32, 2) EOG -> EEG leak, columns (hEOG, vEOG), rows in ``deap_format.EEG_CHANNELS`` order."""


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
EOG_NOISE_UV = 2.0  # white noise (uV) on the EOG channels (and the BDF's filler EOG rows)


def _layout(subject: int, params: SynthParams) -> _Layout:
    rng = stream_rng(params.seed, subject, STREAM_LAYOUT)
    centres = rng.uniform(-1, 1, (_N_BACKGROUND, 2))
    widths = rng.uniform(0.35, 0.7, _N_BACKGROUND)
    signs = rng.choice([-1.0, 1.0], _N_BACKGROUND)
    background = np.column_stack(
        [s * blob(tuple(c), w) for c, w, s in zip(centres, widths, signs, strict=True)]
    )
    background *= _BACKGROUND_RMS_UV / np.sqrt(np.mean(np.sum(background**2, axis=1)))

    def posterior(x: float) -> np.ndarray:
        spot = blob((x, -0.85), 0.45)
        return _POSTERIOR_ALPHA_UV * (_POSTERIOR_FLOOR + (1 - _POSTERIOR_FLOOR) * spot)

    def only(names: tuple[str, ...]) -> np.ndarray:
        return _FRONTAL_ALPHA_UV * np.isin(df.EEG_CHANNELS, names).astype(float)

    alpha = np.column_stack(
        [posterior(-0.3), posterior(0.3), only(LEFT_FRONTAL), only(RIGHT_FRONTAL)]
    )
    beta_centres = rng.uniform(-0.8, 0.8, (_N_BETA, 2))
    beta_blobs = np.column_stack([0.5 + 0.5 * blob(tuple(c), 0.6) for c in beta_centres])
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


@dataclass(frozen=True)
class SubjectEffects:
    """How strongly one subject's rhythms follow the ratings (slopes per rating point)."""

    alpha_arousal: float
    beta_arousal: float
    asymmetry_valence: float
    """Negative for a subject whose frontal asymmetry runs the other way (v2 only)."""


V1_EFFECTS = SubjectEffects(ALPHA_AROUSAL_SLOPE, BETA_AROUSAL_SLOPE, ASYMMETRY_VALENCE_SLOPE)


def subject_effects(*, subject: int, params: SynthParams) -> SubjectEffects:
    """v1: the same slopes for everyone; v2: scaled per subject, some with the asymmetry reversed
    (see ``pipeline.synth.difficulty``)."""
    level = params.level
    if level is None:
        return V1_EFFECTS
    rng = stream_rng(params.seed, subject, STREAM_EFFECTS)
    scale = level.effect_scale * rng.uniform(0.5, 1.5, 3)
    asymmetry = arousal = 1.0
    if level.reversed_fraction > 0:
        # Every k-th subject, not a coin per subject: any k consecutive subjects hold a reversed one.
        k = round(1 / level.reversed_fraction)
        place = (subject + params.seed) % k
        asymmetry = -1.0 if place == 0 else 1.0
        arousal = -1.0 if place == k // 2 else 1.0
    return SubjectEffects(arousal * ALPHA_AROUSAL_SLOPE * scale[0],
                          arousal * BETA_AROUSAL_SLOPE * scale[1],
                          asymmetry * ASYMMETRY_VALENCE_SLOPE * scale[2])


def rhythm_gains(
    *, valence: float, arousal: float, effects: SubjectEffects = V1_EFFECTS
) -> dict[str, float]:
    """Amplitude gains of the rhythm sources for one trial's ratings (see module docstring)."""
    alpha = 1.0 + effects.alpha_arousal * (arousal - 5.0)
    return {
        "alpha": alpha,
        "beta": 1.0 + effects.beta_arousal * (arousal - 5.0),
        "frontal_left": alpha * (1.0 - effects.asymmetry_valence * (valence - 5.0)),
        "frontal_right": alpha * (1.0 + effects.asymmetry_valence * (valence - 5.0)),
    }


def nuisance_gains(subject: int, experiment: int, params: SynthParams) -> np.ndarray | None:
    """(8,) label-independent trial gains of the v2 source groups: background, posterior alpha
    L/R, frontal alpha L/R, beta x3 (``None`` in v1: every source at unit power)."""
    level = params.level
    if level is None:
        return None
    rng = stream_rng(params.seed, subject, STREAM_NUISANCE, experiment)
    background, posterior, frontal, beta = np.exp(level.nuisance_sigma * rng.standard_normal(4))
    own = np.exp(level.asymmetry_noise * rng.standard_normal(2))
    return np.array([background, posterior, posterior, frontal * own[0], frontal * own[1],
                     beta, beta, beta])


def _clean_eeg(
    rng: np.random.Generator, layout: _Layout, valence: float, arousal: float, n: int,
    effects: SubjectEffects = V1_EFFECTS, nuisance: np.ndarray | None = None,
) -> np.ndarray:
    sfreq = float(df.SFREQ)
    f = np.fft.rfftfreq(n, 1 / sfreq)
    with np.errstate(divide="ignore"):
        pink = np.where(f > 0, 1 / np.sqrt(f), 0.0) * highpass(f, 4.0, 4) * lowpass(f, 45.0, 8)
    alpha_spectra = np.exp(-((f - layout.alpha_hz[:, None]) ** 2) / (2 * 0.8**2))
    beta_spectrum = highpass(f, 13.0, 6) * lowpass(f, 30.0, 6)

    background = bursty(rng, pink, _N_BACKGROUND, n, 0.4, sfreq)
    alpha = bursty(rng, alpha_spectra, 4, n, 0.5, sfreq)
    beta = bursty(rng, beta_spectrum, _N_BETA, n, 0.5, sfreq)

    gains = rhythm_gains(valence=valence, arousal=arousal, effects=effects)
    rise = ramp(n, sfreq)
    target_alpha = np.array(
        [gains["alpha"], gains["alpha"], gains["frontal_left"], gains["frontal_right"]]
    )
    alpha *= 1.0 + (target_alpha[:, None] - 1.0) * rise
    beta *= 1.0 + (gains["beta"] - 1.0) * rise
    if nuisance is not None:
        background *= nuisance[0]
        alpha *= nuisance[1:5, None]
        beta *= nuisance[5:, None]
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
        band = highpass(f, 20.0, 4) * lowpass(f, 60.0, 4)
        carrier = unit_std(shaped_noise(rng, band, 1, n))[0]
        envelope = np.full(n, 2.0)
        for onset in _event_times(rng, 0.15, 1.0, n / sfreq):
            length = int(rng.uniform(0.5, 2.0) * sfreq)
            start = int(onset * sfreq)
            envelope[start : start + length] += 30.0 * np.hanning(length)[: n - start]
        return carrier * envelope

    def slow(period_range: tuple[float, float]) -> np.ndarray:
        # Sum of 3 sinusoids: drifts on minute scales even in a 6 s trial, too short for FFT
        # shaping at such low frequencies.
        return sum(sinusoid(rng, tau, period_range) for _ in range(3)) / np.sqrt(1.5)

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
    """(T, 40, n) float64: what ``sNN.dat`` holds (v2: EEG rows common-average referenced)."""
    car_removed: np.ndarray | None = None
    """(T, 1, n) the common average taken out of the EEG rows of ``data`` (v2); ``None`` in v1,
    whose ``.dat`` is not re-referenced."""
    contact_gains: np.ndarray | None = None
    """(T, 32) the per-trial, per-channel gains of the ``contact`` family (already in
    ``clean_eeg`` and ``data``; there the EEG rows are ``gains * (clean + mixing @ eog)`` before
    the reference); ``None`` for ``rhythms``."""

    @property
    def recording(self) -> np.ndarray:
        """(T, 40, n) ``data`` before the common average reference: what the BDF holds."""
        if self.car_removed is None:
            return self.data
        eeg = len(df.EEG_CHANNELS)
        return np.concatenate([self.data[:, :eeg] + self.car_removed, self.data[:, eeg:]], axis=1)

    @property
    def experiment_order(self) -> np.ndarray:
        """(T,) Experiment_id shown at Trial 1..T."""
        return np.argsort(self.presentation_order) + 1


def subject_signals(*, subject: int, params: SynthParams) -> SubjectSignals:
    """The deterministic ground truth of one subject (independent of ``params.subjects``)."""
    if not 1 <= subject <= MAX_SUBJECTS:
        raise ValueError(f"subject must be 1..{MAX_SUBJECTS}, got {subject}")
    design = subject_design(subject, params)
    layout = _layout(subject, params)
    n, t = params.n_samples, params.trials
    effects = subject_effects(subject=subject, params=params)
    clean = np.empty((t, len(df.EEG_CHANNELS), n))
    eog = np.empty((t, 2, n))
    eog_rows = np.empty((t, 2, n))
    peripheral = np.empty((t, 6, n))
    contact = params.eeg_family == "contact"
    family_layout = contact_layout(subject, params) if contact else None
    channel_gains = np.ones((t, len(df.EEG_CHANNELS)))
    for e in range(t):
        experiment = e + 1
        valence, arousal = design.ratings[e, :2]
        eeg_rng = stream_rng(params.seed, subject, STREAM_EEG, experiment)
        nuisance = nuisance_gains(subject, experiment, params)
        if family_layout is not None:
            gains = contact_rating_gains(valence=valence, arousal=arousal,
                                         alpha_arousal=effects.alpha_arousal,
                                         beta_arousal=effects.beta_arousal,
                                         asymmetry_valence=effects.asymmetry_valence)
            clean[e] = contact_clean_eeg(eeg_rng, family_layout, gains, n, nuisance)
            channel_gains[e] = contact_gains(subject, experiment, params)
        else:
            clean[e] = _clean_eeg(eeg_rng, layout, valence, arousal, n, effects, nuisance)
        eog_rng = stream_rng(params.seed, subject, STREAM_EOG, experiment)
        eog[e] = _eog(eog_rng, layout, n)
        eog_rows[e] = eog[e] + EOG_NOISE_UV * eog_rng.standard_normal((2, n))
        peripheral_rng = stream_rng(params.seed, subject, STREAM_PERIPHERAL, experiment)
        peripheral[e] = _peripheral(peripheral_rng, layout, n)
    mixing = EOG_MIXING.copy()
    eeg_rows = clean + mixing @ eog
    if contact:  # the electrode's contact scales all it records, the EOG leak included
        clean *= channel_gains[:, :, None]
        eeg_rows *= channel_gains[:, :, None]
    data = np.concatenate([eeg_rows, eog_rows, peripheral], axis=1)
    car_removed = None
    if params.level is not None:  # DEAP's .dat is common-average referenced
        eeg = data[:, : len(df.EEG_CHANNELS)]
        car_removed = eeg.mean(axis=1, keepdims=True)
        eeg -= car_removed
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
        car_removed=car_removed,
        contact_gains=channel_gains if contact else None,
    )
