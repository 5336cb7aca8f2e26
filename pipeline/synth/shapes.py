"""Building blocks of the synthetic signals: scalp positions, spectral shapes, bursty sources."""

from __future__ import annotations

import numpy as np

from pipeline.readers import deap_format as df

RAMP_SECONDS = 0.25
"""Rating-dependent gains rise linearly over this long after the 3 s baseline."""

# Approximate 2-D scalp positions (x: left -1 .. right 1, y: back -1 .. front 1); only the
# smoothness of the spatial patterns depends on them.
CHANNEL_XY: dict[str, tuple[float, float]] = {
    "Fp1": (-0.31, 0.95), "Fp2": (0.31, 0.95), "AF3": (-0.33, 0.74), "AF4": (0.33, 0.74),
    "F7": (-0.81, 0.59), "F3": (-0.41, 0.54), "Fz": (0.0, 0.5), "F4": (0.41, 0.54),
    "F8": (0.81, 0.59), "FC5": (-0.68, 0.28), "FC1": (-0.24, 0.25), "FC2": (0.24, 0.25),
    "FC6": (0.68, 0.28), "T7": (-1.0, 0.0), "C3": (-0.5, 0.0), "Cz": (0.0, 0.0),
    "C4": (0.5, 0.0), "T8": (1.0, 0.0), "CP5": (-0.68, -0.28), "CP1": (-0.24, -0.25),
    "CP2": (0.24, -0.25), "CP6": (0.68, -0.28), "P7": (-0.81, -0.59), "P3": (-0.41, -0.54),
    "Pz": (0.0, -0.5), "P4": (0.41, -0.54), "P8": (0.81, -0.59), "PO3": (-0.33, -0.74),
    "PO4": (0.33, -0.74), "O1": (-0.31, -0.95), "Oz": (0.0, -1.0), "O2": (0.31, -0.95),
}  # fmt: skip


def highpass(f: np.ndarray, corner: float, order: int) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(1.0 + (corner / f) ** (2 * order))


def lowpass(f: np.ndarray, corner: float, order: int) -> np.ndarray:
    return 1.0 / np.sqrt(1.0 + (f / corner) ** (2 * order))


def shaped_noise(rng: np.random.Generator, amplitude: np.ndarray, k: int, n: int) -> np.ndarray:
    """(k, n) Gaussian noise with amplitude spectrum ``amplitude`` (rfft bins, (k or 1, n//2+1))."""
    spectrum = np.fft.rfft(rng.standard_normal((k, n)), axis=-1) * amplitude
    return np.fft.irfft(spectrum, n=n, axis=-1)


def unit_std(x: np.ndarray) -> np.ndarray:
    """``x`` centred and scaled to unit standard deviation along the last axis."""
    x = x - x.mean(axis=-1, keepdims=True)
    return x / x.std(axis=-1, keepdims=True)


def bursty(
    rng: np.random.Generator, amplitude: np.ndarray, k: int, n: int, sigma: float, sfreq: float
) -> np.ndarray:
    """Band-limited noise times a log-normal slow envelope: independent, super-Gaussian sources."""
    f = np.fft.rfftfreq(n, 1 / sfreq)
    carrier = shaped_noise(rng, amplitude, k, n)
    slow = unit_std(shaped_noise(rng, np.exp(-(f**2) / (2 * 0.25**2)), k, n))
    return unit_std(carrier * np.exp(sigma * slow))


def sinusoid(
    rng: np.random.Generator, tau: np.ndarray, period_range: tuple[float, float]
) -> np.ndarray:
    """Unit sinusoid over ``tau`` with period drawn from ``period_range`` and a random phase."""
    period = rng.uniform(*period_range)
    return np.sin(2 * np.pi * tau / period + rng.uniform(0, 2 * np.pi))


def blob(centre: tuple[float, float], width: float) -> np.ndarray:
    xy = np.array([CHANNEL_XY[c] for c in df.EEG_CHANNELS])
    return np.exp(-np.sum((xy - centre) ** 2, axis=1) / (2 * width**2))


def ramp(n: int, sfreq: float) -> np.ndarray:
    """0 during the baseline, rising linearly to 1 over RAMP_SECONDS after it."""
    tau = np.arange(n) / sfreq
    return np.clip((tau - df.BASELINE_SECONDS) / RAMP_SECONDS, 0.0, 1.0)
