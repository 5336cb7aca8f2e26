"""The eeg stage: band-pass + ICA artifact removal on a subject's continuous data.

A params model (only this stage's settings: the store's fingerprint hashes exactly these), a
keyword-only pure function on numpy arrays with its result dataclass, and :func:`clean_eeg`, the
stage function the stage table calls (arrays in, the schema's arrays out):

* :func:`filter_and_ica` (:class:`FilterIcaParams` → :class:`IcaResult`): zero-phase FIR band-pass
  of every trial separately, FastICA fitted on the subject's continuous data (all trials
  concatenated), EOG components found with ``find_bads_eog`` against hEOG/vEOG (or Fp1/Fp2 as
  proxies) and removed.

Two defects of the Milmer paper's released code are avoided on purpose (``shared/DESIGN.md``): it
fits ICA per trial and excludes no component, so its "artifact removal" changes nothing; and it
reshapes ``(1, 32, 7680)`` trials with ``reshape(-1, 32).T``, which interleaves the samples of all
channels. Here channels are only ever indexed along their own axis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import mne
import numpy as np

from pipeline.readers import deap_format as fmt
from pipeline.errors import ParameterError
from pipeline.stages.eeg.iclabel import iclabel_ica
from pipeline.stages.eeg.mne_tools import (
    MNE_VERBOSE,
    MONTAGE,
    UV_PER_V,
    IcaResult,
    bandpassed_raw,
    eog_flags,
    sensor_space,
)
from pipeline.stages.eeg.params import (
    ICLABEL_CLASSES,
    ICLABEL_EXCLUDED,
    ICLABEL_NEEDS_RAW,
    FilterIcaParams,
)

_FRONTAL_PROXIES: tuple[str, str] = ("Fp1", "Fp2")
"""EOG references when hEOG/vEOG are absent or not used: the channels nearest the eyes."""




def _check_trials(eeg: np.ndarray, eog: np.ndarray | None) -> None:
    n_eeg = len(fmt.EEG_CHANNELS)
    if eeg.ndim != 3 or eeg.shape[1] != n_eeg:
        raise ValueError(
            f"eeg must be (trials, {n_eeg}, samples) in deap_format.EEG_CHANNELS order, "
            f"got shape {eeg.shape}")
    if eeg.shape[0] == 0 or eeg.shape[2] == 0:
        raise ValueError(f"eeg holds no data: shape {eeg.shape}")
    if not np.all(np.isfinite(eeg)):
        raise ValueError("eeg contains NaN or inf; ICA cannot be fitted on it")
    if eog is not None:
        expected = (eeg.shape[0], len(fmt.EOG_CHANNELS), eeg.shape[2])
        if eog.shape != expected:
            raise ValueError(
                f"eog must be (trials, 2, samples) = {expected} (hEOG, vEOG) to match eeg, "
                f"got shape {eog.shape}")
        if not np.all(np.isfinite(eog)):
            raise ValueError("eog contains NaN or inf")


def _check_band(params: FilterIcaParams, sfreq: float, n_samples: int) -> None:
    if not sfreq > 0:
        raise ValueError(f"sfreq must be positive, got {sfreq}")
    nyquist = sfreq / 2
    if params.h_freq >= nyquist:
        raise ParameterError(
            f"FilterIcaParams.h_freq: {params.h_freq} Hz is not below the Nyquist frequency "
            f"({nyquist} Hz at sfreq={sfreq}); lower h_freq")
    taps = len(mne.filter.create_filter(
        None, sfreq, params.l_freq, params.h_freq, verbose=MNE_VERBOSE))
    if n_samples < taps:
        raise ParameterError(
            f"FilterIcaParams.l_freq: the {params.l_freq}-{params.h_freq} Hz FIR filter is "
            f"{taps} samples ({taps / sfreq:.2f} s) long but trials have only {n_samples} "
            f"({n_samples / sfreq:.2f} s); raise l_freq or give longer trials")


def _check_rank(raw: mne.io.BaseRaw, n_components: int) -> None:
    data = raw.get_data(picks="eeg")
    data -= data.mean(axis=1, keepdims=True)
    variances = np.linalg.eigvalsh(data @ data.T)[::-1]
    # MNE's own bound for a stable unmixing: a PCA variance below 1e-6 of the largest.
    rank = int(np.sum(variances > variances[0] * 1e-6))
    if n_components > rank:
        raise ParameterError(
            f"FilterIcaParams.ica_n_components: {n_components} components asked but the EEG has "
            f"rank {rank} (common-average referenced data loses one); ICA would unmix noise and "
            f"wreck the channels. Use a variance fraction such as 0.999, or an int <= {rank}")


def filter_and_ica(
    *,
    eeg: np.ndarray,
    eog: np.ndarray | None,
    sfreq: float,
    params: FilterIcaParams,
    progress: Callable[[str], None] | None = None,
) -> IcaResult:
    """Band-pass every trial, fit ICA on the subject's concatenated trials, remove EOG components.

    ``progress`` is told each step as it starts ("fitting ICA ...": the slow part).

    ``eeg`` is (trials, 32, samples) in µV in :data:`deap_format.EEG_CHANNELS` order, ``eog``
    (trials, 2, samples) hEOG/vEOG in µV or None. Deterministic for a given ``params.ica_seed``.
    """
    _check_trials(eeg, eog)
    n_trials, n_eeg, n_samples = eeg.shape
    _check_band(params, sfreq, n_samples)
    use_eog = eog is not None and params.use_eog_channels
    eog_reference = list(fmt.EOG_CHANNELS if use_eog else _FRONTAL_PROXIES)

    timings: dict[str, float] = {}
    started = time.perf_counter()
    raw = bandpassed_raw(eeg=eeg, eog=eog, sfreq=sfreq, params=params)
    timings["filter"] = time.perf_counter() - started

    if isinstance(params.ica_n_components, int):
        _check_rank(raw, params.ica_n_components)
    ica = mne.preprocessing.ICA(
        n_components=params.ica_n_components, method=params.ica_method,
        random_state=params.ica_seed, max_iter=params.ica_max_iter, verbose=MNE_VERBOSE)
    if progress is not None:
        progress(f"band-pass done in {timings['filter']:.1f} s; fitting ICA "
                 f"({params.ica_method}, {params.ica_n_components} components)")
    started = time.perf_counter()
    ica.fit(raw, picks="eeg", verbose=MNE_VERBOSE)
    timings["ica_fit"] = time.perf_counter() - started

    started = time.perf_counter()
    flagged_by, excluded_by, scores = eog_flags(ica, raw, eog_reference, params)
    timings["find_bads_eog"] = time.perf_counter() - started
    excluded = sorted(set().union(*excluded_by.values()))

    started = time.perf_counter()
    cleaned_raw = ica.apply(raw.copy(), exclude=excluded, verbose=MNE_VERBOSE)
    timings["apply"] = time.perf_counter() - started

    def trials_of(data: np.ndarray) -> np.ndarray:
        return (data * UV_PER_V).reshape(len(data), n_trials, n_samples).transpose(1, 0, 2)

    cleaned = trials_of(cleaned_raw.get_data(picks="eeg")).astype(np.float32)
    eog_filtered = None if eog is None else trials_of(raw.get_data(picks="eog")).astype(np.float32)

    mixing, unmixing, channel_mean = sensor_space(ica, n_eeg)
    n_components = int(ica.n_components_)

    n_iter = int(ica.n_iter_)
    return IcaResult(
        cleaned=cleaned,
        eog_filtered=eog_filtered,
        excluded=excluded,
        excluded_by=excluded_by,
        flagged_by=flagged_by,
        scores=scores,
        eog_reference=eog_reference,
        n_components=n_components,
        n_iter=n_iter,
        converged=n_iter < params.ica_max_iter,
        mixing=mixing,
        unmixing=unmixing,
        channel_mean=channel_mean,
        timings=timings,
    )


HighRate = Callable[[], tuple[np.ndarray, np.ndarray, float]]
"""Loads the subject's raw trials at >= 200 Hz: ``(eeg, eog, sfreq)``, like the ingest arrays."""


def clean_eeg(
    *, eeg: np.ndarray, eog: np.ndarray, sfreq: float, params: FilterIcaParams,
    high_rate: HighRate | None = None, progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The eeg stage: band-pass + ICA on the subject's continuous data; records what was excluded
    and why (``arrays`` by the store schema's names, ``extra`` for the commit record).

    ``high_rate`` is needed by ``ica_labeler='iclabel'`` only (ICLabel fits on 1-100 Hz)."""
    if params.ica_labeler == "iclabel":
        if high_rate is None:
            raise ParameterError(ICLABEL_NEEDS_RAW)
        eeg_hi, eog_hi, sfreq_hi = high_rate()
        result = iclabel_ica(eeg=eeg, eog=eog, sfreq=sfreq, eeg_high=eeg_hi, eog_high=eog_hi,
                             sfreq_high=sfreq_hi, params=params, progress=progress)
    else:
        result = filter_and_ica(eeg=eeg, eog=eog, sfreq=sfreq, params=params, progress=progress)
    probabilities = (result.label_probabilities if result.label_probabilities is not None
                     else np.full((result.n_components, len(ICLABEL_CLASSES)), np.nan))
    flagged = np.zeros(result.scores.shape, dtype=bool)
    for i, name in enumerate(result.eog_reference):
        flagged[i, result.flagged_by[name]] = True
    arrays = {
        "eeg": result.cleaned,
        "ica_excluded": np.asarray(result.excluded, dtype=np.int32),
        "ica_scores": result.scores.astype(np.float32),
        "ica_flagged": flagged,
        "ica_mixing": result.mixing,
        "ica_unmixing": result.unmixing,
        "ica_channel_mean": result.channel_mean,
        "ica_label_probabilities": probabilities.astype(np.float32),
    }
    extra = {
        "ica_labeler": params.ica_labeler,
        "ica_excluded": [int(k) for k in result.excluded],
        "ica_reasons": component_reasons(result, min_correlation=params.eog_min_correlation,
                                         iclabel_threshold=params.iclabel_threshold),
        "eog_reference": list(result.eog_reference),
        "n_components": int(result.n_components),
        "ica_converged": bool(result.converged),
        "ica_n_iter": int(result.n_iter),
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
    }
    return arrays, extra


def component_reasons(result: IcaResult, *, min_correlation: float,
                      iclabel_threshold: float = 0.8) -> list[str]:
    """Why each component was excluded or kept, one line per component, from its scores and flags
    (with ICLabel: its most likely class, then the EOG correlations as a cross-check): what an
    auditor reads beside the component's topography."""
    reasons = []
    for k in range(result.n_components):
        parts = []
        if result.label_probabilities is not None:
            p = result.label_probabilities[k]
            top = int(np.argmax(p))
            artifact = max(p[ICLABEL_CLASSES.index(c)] for c in ICLABEL_EXCLUDED)
            parts.append(f"ICLabel {ICLABEL_CLASSES[top]} p={p[top]:.3f}; eye/muscle "
                         f"p={artifact:.3f} {'>=' if artifact >= iclabel_threshold else '<'} "
                         f"{iclabel_threshold:g}; EOG cross-check")
        for i, name in enumerate(result.eog_reference):
            r = float(result.scores[i, k])
            if k in result.excluded_by.get(name, []):
                parts.append(f"{name}: z-flagged, |r|={abs(r):.2f} >= {min_correlation:g}")
            elif k in result.flagged_by.get(name, []):
                parts.append(f"{name}: z-flagged but |r|={abs(r):.2f} < {min_correlation:g}")
        verdict = "excluded" if k in result.excluded else "kept"
        if len(parts) == (result.label_probabilities is not None):
            parts.append("flagged by no EOG reference")
        reasons.append(f"{verdict}: " + "; ".join(parts))
    return reasons


def rebuild_ica(
    *, mixing: np.ndarray, unmixing: np.ndarray, channel_mean: np.ndarray, sfreq: float,
    excluded: list[int], n_iter: int = 0, labeler: str = "eog",
) -> mne.preprocessing.ICA:
    """An ``mne.preprocessing.ICA`` from the stored sensor-space solution (µV), for plotting and
    for applying to the band-passed EEG (in volts, :data:`deap_format.EEG_CHANNELS` with a
    standard 10-20 montage).

    MNE keeps ICA as a scalar pre-whitener, a PCA basis and a square unmixing matrix; its EEGLAB
    reader recovers those from a sensor-space unmixing by SVD, and so does this. The basis is
    completed to all 32 directions so that, as in the fit, the part of the data outside the
    ICA components passes through :meth:`~mne.preprocessing.ICA.apply` untouched.
    """
    n_components = unmixing.shape[0]
    u, s, vt = np.linalg.svd(unmixing, full_matrices=True)
    info = mne.create_info(list(fmt.EEG_CHANNELS), sfreq, "eeg")
    info.set_montage(MONTAGE)
    ica = (mne.preprocessing.ICA(n_components=n_components, method="infomax",
                                 fit_params={"extended": True}) if labeler == "iclabel"
           else mne.preprocessing.ICA(n_components=n_components, method="fastica"))
    ica.info = info
    ica.ch_names = list(fmt.EEG_CHANNELS)
    ica.current_fit = "raw"
    ica.n_components_ = n_components
    ica.n_pca_components = None
    ica.pre_whitener_ = np.full((len(fmt.EEG_CHANNELS), 1), 1.0 / UV_PER_V)
    ica.pca_mean_ = np.asarray(channel_mean, dtype=np.float64)
    ica.pca_components_ = vt
    ica.unmixing_matrix_ = u * s
    ica.mixing_matrix_ = np.linalg.pinv(ica.unmixing_matrix_)
    ica.pca_explained_variance_ = np.concatenate(
        [s * s, np.full(len(vt) - n_components, (s[-1] ** 2) * 1e-6)])
    ica.n_iter_ = n_iter
    ica.reject_ = None
    ica._update_ica_names()
    ica.exclude = [int(k) for k in excluded]
    # The stored mixing is the fit's own pseudo-inverse of its unmixing; keep it exactly.
    ica.mixing_matrix_ = vt[:n_components] @ mixing
    return ica
