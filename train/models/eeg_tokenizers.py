"""EEG tokenizers: one token per channel from its raw 3 s window (32 x 384 samples at 128 Hz).

* ``raw`` (the paper's): LayerNorm(384) -> Linear(384 -> d) -> ReLU. It sees samples, so it must
  learn band filters and rectification from the data to see band power with a random phase
  (what EEG carries); on a few hundred windows it memorises them instead.
* ``log_power``: per channel, the Hann-windowed power spectrum (mean removed) averaged in 2 Hz
  bins from 1 to 45 Hz (22 bins), log10; standardised per (channel, bin) with statistics of the
  training fold only (:meth:`SpectralTokenizer.fit_statistics`, kept as buffers in checkpoints);
  then Linear(22 -> d).
* ``de``: differential entropy in the classic bands δ 1-4, θ 4-8, α 8-14, β 14-31, γ 31-45 Hz.
  For a band-limited Gaussian signal DE = ½ log(2πe σ²), σ² its band power, so after the
  standardisation it equals log band power in those 5 bands (Duan et al. 2013); then Linear(5 -> d).
* ``band_maps``: the ``log_power`` features turned around: one token per 2 Hz band (22 tokens),
  holding the standardised log powers of the 32 channels in that band (its scalp map), then a
  Linear(32 -> d) of the band's own (:class:`TokenwiseLinear`). A spatial pattern within a band,
  such as frontal alpha asymmetry (left minus right), is linear in one token; with one token per
  channel it needs attention to subtract one channel's token from another's. The weights are
  not shared between bands: with one Linear for all bands, alpha and beta power on the same
  channels give the same token and only the position embeddings tell them apart (measured: on
  the small planted training store such a head reached 0.14 after 10 epochs, chance 0.25, against
  0.42 with a Linear per band).

The spectra are computed on the fly from the stored windows, so the store contract does not
change, in float32 even under autocast. Tokenizers are registered by name
(:func:`register_tokenizer`; :func:`create_tokenizer` builds one, :func:`tokenizer_names` lists
them); every one takes the same keyword arguments (``eeg_samples``, ``eeg_channels``, ``sfreq``,
``d_model``) and is an :class:`EegTokenizer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

LOG_POWER_BANDS: tuple[tuple[float, float], ...] = tuple((f, f + 2.0) for f in range(1, 45, 2))
DE_BANDS: tuple[tuple[float, float], ...] = ((1, 4), (4, 8), (8, 14), (14, 31), (31, 45))


class EegTokenizer(nn.Module):
    """EEG windows (B, C, S) -> tokens (B, n_tokens, d)."""

    n_tokens: int
    needs_statistics: ClassVar[bool] = False
    """Whether :meth:`fit_statistics` must see the fit rows' windows before training."""

    @torch.no_grad()
    def fit_statistics(self, eeg: Tensor) -> None:
        """Statistics of ``eeg`` (the training rows) the tokenizer standardises with; none here."""


TokenizerFactory = Callable[..., EegTokenizer]
_TOKENIZERS: dict[str, TokenizerFactory] = {}


def register_tokenizer(name: str) -> Callable[[TokenizerFactory], TokenizerFactory]:
    """Register a tokenizer factory (a class or a function taking ``eeg_samples``,
    ``eeg_channels``, ``sfreq`` and ``d_model``) under ``name`` (``eeg_tokenizer=name``)."""

    def add(factory: TokenizerFactory) -> TokenizerFactory:
        if name in _TOKENIZERS:
            raise ValueError(f"eeg tokenizer {name!r} is registered twice")
        _TOKENIZERS[name] = factory
        return factory

    return add


def tokenizer_names() -> tuple[str, ...]:
    return tuple(_TOKENIZERS)


def create_tokenizer(name: str, *, eeg_samples: int, eeg_channels: int, sfreq: float,
                     d_model: int) -> EegTokenizer:
    if name not in _TOKENIZERS:
        raise ValueError(f"unknown eeg_tokenizer {name!r}: {', '.join(_TOKENIZERS)}")
    return _TOKENIZERS[name](eeg_samples=eeg_samples, eeg_channels=eeg_channels, sfreq=sfreq,
                             d_model=d_model)


class RawTokenizer(EegTokenizer):
    """One token per EEG channel: LayerNorm(samples) -> Linear(samples -> d) -> ReLU."""

    def __init__(self, *, eeg_samples: int = 384, eeg_channels: int = 32, d_model: int = 768) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(eeg_samples)
        self.proj = nn.Linear(eeg_samples, d_model)
        self.act = nn.ReLU()
        self.n_tokens = eeg_channels

    def forward(self, eeg: Tensor) -> Tensor:  # (B, C, S) -> (B, C, d)
        return self.act(self.proj(self.norm(eeg)))


def band_matrix(bands: tuple[tuple[float, float], ...], *, samples: int, sfreq: float) -> Tensor:
    """(n_freqs, n_bands): the mean over each band's rFFT bins [low, high)."""
    freqs = torch.fft.rfftfreq(samples, 1 / sfreq)
    columns = []
    for low, high in bands:
        inside = ((freqs >= low) & (freqs < high)).float()
        if not inside.any():
            raise ValueError(f"band {low}-{high} Hz holds no frequency bin of a {samples}-sample "
                             f"window at {sfreq} Hz")
        columns.append(inside / inside.sum())
    return torch.stack(columns, dim=1)


def log_band_power(eeg: Tensor, window: Tensor, bands: Tensor) -> Tensor:
    """(B, C, S) -> (B, C, n_bands): log10 of the mean Hann-windowed power in each band."""
    with torch.autocast(device_type=eeg.device.type, enabled=False):
        x = eeg.float()
        x = (x - x.mean(dim=-1, keepdim=True)) * window
        power = torch.fft.rfft(x, dim=-1).abs().square()
        return torch.log10(power @ bands + 1e-10)


class TokenwiseLinear(nn.Module):
    """(B, n, in) -> (B, n, out) with a separate Linear(in -> out) for each of the n tokens,
    initialised as ``nn.Linear`` is."""

    def __init__(self, n_tokens: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = in_features ** -0.5
        self.weight = nn.Parameter(torch.empty(n_tokens, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_tokens, out_features).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("bni,nio->bno", x, self.weight) + self.bias


class SpectralTokenizer(EegTokenizer):
    """Log band powers standardised with training statistics: one token per channel (its
    spectrum), or with ``per_band`` one token per band (its scalp map)."""

    needs_statistics = True

    def __init__(self, *, bands: tuple[tuple[float, float], ...], eeg_samples: int = 384,
                 eeg_channels: int = 32, sfreq: float = 128.0, d_model: int = 768,
                 per_band: bool = False) -> None:
        super().__init__()
        self.per_band = per_band
        self.n_tokens = len(bands) if per_band else eeg_channels
        self.register_buffer("window", torch.hann_window(eeg_samples, periodic=False))
        self.register_buffer("bands", band_matrix(bands, samples=eeg_samples, sfreq=sfreq))
        self.register_buffer("mean", torch.zeros(eeg_channels, len(bands)))
        self.register_buffer("std", torch.ones(eeg_channels, len(bands)))
        self.proj = (TokenwiseLinear(len(bands), eeg_channels, d_model) if per_band
                     else nn.Linear(len(bands), d_model))

    def features(self, eeg: Tensor) -> Tensor:
        return log_band_power(eeg, self.window, self.bands)

    @torch.no_grad()
    def fit_statistics(self, eeg: Tensor, *, chunk: int = 512) -> None:
        """Per (channel, band) mean and std of the features of ``eeg`` (the training rows)."""
        total = torch.zeros_like(self.mean, dtype=torch.float64)
        square = torch.zeros_like(total)
        for start in range(0, len(eeg), chunk):
            f = self.features(eeg[start:start + chunk].to(self.window.device)).double()
            total += f.sum(dim=0)
            square += f.square().sum(dim=0)
        n = max(len(eeg), 1)
        mean = total / n
        std = (square / n - mean.square()).clamp_min(0).sqrt()
        self.mean.copy_(mean.float())
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)).float())

    def forward(self, eeg: Tensor) -> Tensor:  # (B, C, S) -> (B, C or n_bands, d)
        standard = (self.features(eeg) - self.mean) / self.std
        if self.per_band:
            standard = standard.transpose(1, 2)  # (B, n_bands, C)
        return self.proj(standard.to(self.proj.weight.dtype))


@register_tokenizer("raw")
def raw(*, eeg_samples: int, eeg_channels: int, sfreq: float, d_model: int) -> EegTokenizer:
    """The paper's: samples -> LayerNorm -> Linear -> ReLU, one token per channel."""
    return RawTokenizer(eeg_samples=eeg_samples, eeg_channels=eeg_channels, d_model=d_model)


@register_tokenizer("log_power")
def log_power(*, eeg_samples: int, eeg_channels: int, sfreq: float, d_model: int) -> EegTokenizer:
    """Log power in 2 Hz bands from 1 to 45 Hz, one token per channel."""
    return SpectralTokenizer(bands=LOG_POWER_BANDS, eeg_samples=eeg_samples,
                             eeg_channels=eeg_channels, sfreq=sfreq, d_model=d_model)


@register_tokenizer("de")
def differential_entropy(*, eeg_samples: int, eeg_channels: int, sfreq: float,
                         d_model: int) -> EegTokenizer:
    """Differential entropy (log band power) in δ θ α β γ, one token per channel."""
    return SpectralTokenizer(bands=DE_BANDS, eeg_samples=eeg_samples, eeg_channels=eeg_channels,
                             sfreq=sfreq, d_model=d_model)


@register_tokenizer("band_maps")
def band_maps(*, eeg_samples: int, eeg_channels: int, sfreq: float, d_model: int) -> EegTokenizer:
    """The ``log_power`` features, one token per 2 Hz band holding its 32 channels' powers."""
    return SpectralTokenizer(bands=LOG_POWER_BANDS, eeg_samples=eeg_samples,
                             eeg_channels=eeg_channels, sfreq=sfreq, d_model=d_model, per_band=True)
