"""What names the eeg stage without running it: its settings, code version and libraries.

Kept apart from :mod:`pipeline.stages.eeg.filter_ica` so that the stage table, the plan and an up-to-date
``milmer preprocess`` do not import MNE (~0.35 s) just to compare fingerprints.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from pipeline.readers import deap_format as fmt

FILTER_ICA_CODE_VERSION = "2"
"""Bump when :func:`pipeline.stages.eeg.filter_ica.filter_and_ica` computes something different for the same parameters."""

ICLABEL_CLASSES: tuple[str, ...] = (
    "brain", "muscle artifact", "eye blink", "heart beat", "line noise", "channel noise", "other")
"""ICLabel's seven classes, in the order of its probabilities."""

ICLABEL_SFREQ = 256
"""The rate the fit runs at: the lowest power-of-two divisor of DEAP's 512 Hz above 2 x 100 Hz."""

ICLABEL_EXCLUDED: tuple[str, ...] = ("eye blink", "muscle artifact")
"""The classes whose components ``ica_labeler='iclabel'`` removes above ``iclabel_threshold``."""


class FilterIcaParams(BaseModel):
    """Settings of the filter + ICA stage.

    ``ica_n_components``: a float in (0, 1) keeps as many PCA components as explain that fraction
    of the variance (MNE's rule); an int keeps that many. The rest of the PCA space passes through
    ICA untouched. A fraction rather than a count because DEAP's preprocessed EEG is
    common-average referenced (rank 31, not 32), and because the last PCA dimensions are Gaussian
    sensor noise, on which FastICA does not converge. Measured on the synthetic generator
    (``pipeline.synth``, 4 trials x 23 s): 0.999 keeps 16-18 components and converges in 9-35
    iterations with both eye components separated; 0.99 keeps 9 and separates neither; 0.9999, 25
    or 30 components reach the noise dimensions and hit 1000 iterations without converging
    (15-24 s instead of < 1 s) for no better EOG removal.

    ``ica_max_iter``: FastICA iterations before giving up (MNE's ``"auto"`` is also 1000 for
    FastICA). On non-Gaussian EEG-like sources FastICA stops after tens of iterations; hitting the
    cap means the fit did not converge and :attr:`IcaResult.converged` says so.

    ``eog_threshold``: |z-score| of a component's correlation with an EOG reference above which
    ``find_bads_eog`` flags it (MNE's default, 3.0).

    ``eog_min_correlation``: a flagged component is excluded only if its |correlation| with that
    reference also reaches this (0.5: r² ≥ 0.25). The z-score alone is relative: MNE z-scores
    iteratively, so once the true eye component is set aside the remaining near-zero correlations
    are tight enough that a neural component can pass z > 3. Measured: with hEOG/vEOG, flagged
    neural components at |r| 0.03-0.23 (synthetic subjects without any EOG leak, and the
    per-channel-tone test data), true eye components at |r| 0.77-1.0; with Fp1/Fp2 proxies, a
    frontal neural component at |r| 0.40 was flagged and its removal wiped out 86 % of a
    non-frontal channel, while the blink component scored 0.66-0.94.

    ``use_eog_channels``: find EOG components against DEAP's hEOG/vEOG when they are given; False
    (or no EOG channels) uses Fp1/Fp2 as proxies.

    ``ica_labeler``: ``eog`` (default) excludes components correlated with hEOG/vEOG as above;
    ``iclabel`` (source ``original`` only) fits extended-infomax ICA on a 1-100 Hz,
    average-referenced 256 Hz copy of the raw BDF, classifies every component with ICLabel
    (``mne-icalabel``) and excludes those whose eye-blink or muscle probability reaches
    ``iclabel_threshold``; the EOG correlations are still computed, as a cross-check. ICLabel was
    trained on 1-100 Hz data: the 128 Hz ``.dat`` (DEAP's own 4-45 Hz band-pass) cannot give it.

    Invalid values raise pydantic's ``ValidationError`` (a ``ValueError``) naming the field, so a
    config that nests these params reports every bad field at once under its path (``eeg.l_freq``);
    what depends on the data (Nyquist, trial length, rank) is a :class:`ParameterError` from
    :func:`filter_and_ica`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    l_freq: float = Field(1.0, gt=0)
    h_freq: float = Field(50.0, gt=0)
    ica_n_components: int | float = 0.999
    ica_method: Literal["fastica"] = "fastica"
    ica_seed: int = Field(0, ge=0)
    ica_max_iter: PositiveInt = 1000
    eog_threshold: float = Field(3.0, gt=0)
    eog_min_correlation: float = Field(0.5, ge=0, lt=1)
    use_eog_channels: bool = True
    ica_labeler: Literal["eog", "iclabel"] = "eog"
    iclabel_threshold: float = Field(0.8, gt=0, lt=1)

    @field_validator("ica_n_components")
    @classmethod
    def _n_components_in_range(cls, value: int | float) -> int | float:
        if isinstance(value, float) and not 0.0 < value < 1.0:
            raise ValueError(
                f"a float is a fraction of explained variance and must lie in (0, 1), got {value}; "
                "give e.g. 0.999, or an int number of components")
        if isinstance(value, int) and not 2 <= value <= len(fmt.EEG_CHANNELS):
            raise ValueError(
                f"an int is a number of components and must lie in [2, {len(fmt.EEG_CHANNELS)}], "
                f"got {value}")
        return value

    @model_validator(mode="after")
    def _band_ordered(self) -> FilterIcaParams:
        if self.l_freq >= self.h_freq:
            raise ValueError(
                f"l_freq ({self.l_freq} Hz) must be below h_freq ({self.h_freq} Hz); "
                "swap or fix the band edges")
        return self


LIBRARIES = ("numpy", "scipy", "mne", "scikit-learn")
"""Recorded with every eeg subject-stage: their versions decide the filter and the ICA."""


def libraries(params: FilterIcaParams) -> tuple[str, ...]:
    """:data:`LIBRARIES`, and with ICLabel the package (and network runtime) that labels."""
    return LIBRARIES + (("mne-icalabel", "torch") if params.ica_labeler == "iclabel" else ())


ICLABEL_NEEDS_RAW = ("eeg.ica_labeler 'iclabel' needs ingest source 'original' (raw 512 Hz BDF): "
                     "ICLabel classifies components of 1-100 Hz data, and the 128 Hz preprocessed "
                     ".dat is DEAP's own 4-45 Hz band-pass; use --source original, or "
                     "ica_labeler 'eog'")
