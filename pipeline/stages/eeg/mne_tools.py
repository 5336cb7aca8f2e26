"""The MNE pieces the eeg stage's labelers and the QC report share: units, montage, log level,
the continuous band-passed recording ICA is fitted on, EOG flags and the sensor-space matrices."""

from __future__ import annotations

from dataclasses import dataclass

import mne
import numpy as np

from pipeline.readers import deap_format as fmt
from pipeline.stages.eeg.params import FilterIcaParams

UV_PER_V = 1e6
"""The arrays are in µV (DEAP's unit); MNE works in volts."""

MONTAGE = ("colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages()
            else "standard_1020")
"""Electrode positions for topographies (MNE 1.13 renamed its 10-20 template)."""

MNE_VERBOSE = "warning"
"""MNE logs every filter design and ICA step at INFO; keep only its warnings."""

# Each call's ``verbose=`` sets MNE's one process-wide level and restores the previous one on exit,
# so two stages in threads race: one restores INFO while the other still runs, and INFO lines reach
# stdout (breaking `milmer preprocess --json`). With the global level already WARNING, every restore
# lands on WARNING too.
mne.set_log_level(MNE_VERBOSE.upper())


@dataclass(frozen=True)
class IcaResult:
    """What :func:`filter_and_ica` produced, plus the record of what ICA removed and why.

    ``scores[i, k]`` is ``find_bads_eog``'s correlation of component ``k`` with reference channel
    ``eog_reference[i]`` (both band-passed 1-10 Hz by MNE); a component is excluded when, for some
    reference, its z-scored correlation exceeds ``eog_threshold`` and its |correlation| reaches
    ``eog_min_correlation``. ``mixing`` and ``unmixing`` are the sensor-space ICA matrices in µV:
    with ``x`` the band-passed EEG of one trial (32, n), ``sources = unmixing @ (x -
    channel_mean[:, None])``, component ``k`` adds ``mixing[:, k] * sources[k]`` to the channels,
    and ``cleaned = x - mixing[:, excluded] @ sources[excluded]``.
    """

    cleaned: np.ndarray
    """(T, 32, n) float32 µV, band-passed, EOG components removed."""
    eog_filtered: np.ndarray | None
    """(T, 2, n) float32 µV hEOG/vEOG band-passed like the EEG, or None when none were given."""
    excluded: list[int]
    """Sorted indices of the removed components: the union of :attr:`excluded_by`."""
    excluded_by: dict[str, list[int]]
    """For each EOG reference channel, the components it excluded (flagged and correlated)."""
    flagged_by: dict[str, list[int]]
    """For each EOG reference channel, the components ``find_bads_eog``'s z-score flagged, before
    the ``eog_min_correlation`` check: a flagged component not in :attr:`excluded_by` was kept."""
    scores: np.ndarray
    """(len(eog_reference), n_components) float32."""
    eog_reference: list[str]
    n_components: int
    n_iter: int
    converged: bool
    """FastICA stopped before ``ica_max_iter``."""
    mixing: np.ndarray
    """(32, n_components) float64, µV per unit source."""
    unmixing: np.ndarray
    """(n_components, 32) float64, unit source per µV."""
    channel_mean: np.ndarray
    """(32,) float64 µV, the mean ICA removes before unmixing."""
    timings: dict[str, float]
    """Seconds spent in ``filter``, ``ica_fit``, ``find_bads_eog`` and ``apply``."""
    label_probabilities: np.ndarray | None = None
    """(n_components, 7) ICLabel probabilities (:data:`ICLABEL_CLASSES`) when ICLabel chose the
    exclusions; None with the EOG-correlation labeler."""


def continuous_raw(*, eeg: np.ndarray, eog: np.ndarray | None, sfreq: float) -> mne.io.RawArray:
    """The subject's trials as one ``RawArray`` in volts (EEG, then hEOG/vEOG when given), with an
    ``EDGE boundary`` annotation at each junction between trials."""
    n_trials, n_eeg, n_samples = eeg.shape
    # One continuous recording: channels × (trial 0 samples, trial 1 samples, ...). Channels stay
    # on their own axis; only the trial and time axes are merged.
    stacked = eeg if eog is None else np.concatenate([eeg, eog], axis=1)
    continuous = stacked.astype(np.float64).transpose(1, 0, 2).reshape(stacked.shape[1], -1)
    ch_names = list(fmt.EEG_CHANNELS) + ([] if eog is None else list(fmt.EOG_CHANNELS))
    ch_types = ["eeg"] * n_eeg + ["eog"] * (len(ch_names) - n_eeg)
    info = mne.create_info(ch_names, sfreq, ch_types)
    raw = mne.io.RawArray(continuous / UV_PER_V, info, verbose=MNE_VERBOSE)
    # DEAP's trials are not contiguous in time (ratings and fixations lie between them): an "EDGE"
    # annotation at each junction makes MNE filter every trial on its own, so no trial's edge
    # rings into its neighbour, and it records the band in raw.info for ICA.
    raw.set_annotations(mne.Annotations(
        onset=np.arange(1, n_trials) * n_samples / sfreq, duration=0.0,
        description="EDGE boundary"))
    return raw


def bandpassed_raw(*, eeg: np.ndarray, eog: np.ndarray | None, sfreq: float,
                   params: FilterIcaParams) -> mne.io.RawArray:
    """:func:`continuous_raw` band-passed as the stage does it, every trial on its own: the data
    ICA is fitted on (the QC report rebuilds it from the ingest arrays)."""
    raw = continuous_raw(eeg=eeg, eog=eog, sfreq=sfreq)
    raw.filter(params.l_freq, params.h_freq, picks="all", skip_by_annotation="edge",
               phase="zero", fir_design="firwin", verbose=MNE_VERBOSE)
    return raw


def eog_flags(
    ica: mne.preprocessing.ICA, raw: mne.io.BaseRaw, eog_reference: list[str],
    params: FilterIcaParams,
) -> tuple[dict[str, list[int]], dict[str, list[int]], np.ndarray]:
    """Per EOG reference: the components ``find_bads_eog`` z-flags, those of them that also reach
    ``eog_min_correlation``, and the (references, components) correlations."""
    excluded_by: dict[str, list[int]] = {}
    flagged_by: dict[str, list[int]] = {}
    scores = []
    for name in eog_reference:
        # One reference per call, so each flag is paired with that reference's own correlation.
        flagged, score = ica.find_bads_eog(
            raw, ch_name=name, threshold=params.eog_threshold, verbose=MNE_VERBOSE)
        flagged_by[name] = sorted(int(k) for k in flagged)
        excluded_by[name] = [k for k in flagged_by[name]
                             if abs(score[k]) >= params.eog_min_correlation]
        scores.append(score)
    return flagged_by, excluded_by, np.asarray(scores, dtype=np.float32)


def sensor_space(ica: mne.preprocessing.ICA, n_eeg: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mixing, unmixing, channel_mean)`` of a fitted ICA in µV (see :class:`IcaResult`)."""
    # See MNE's ICA._pick_sources: MNE divides the data by one scalar per channel type
    # (pre_whitener_), removes pca_mean_, then applies unmixing_matrix_ @ PCA.
    n_components = int(ica.n_components_)
    pca = ica.pca_components_[:n_components]
    scale = ica.pre_whitener_[:n_eeg, 0] * UV_PER_V
    unmixing = (ica.unmixing_matrix_ @ pca) / scale[None, :]
    mixing = scale[:, None] * (pca.T @ ica.mixing_matrix_)
    return mixing, unmixing, ica.pca_mean_ * scale
