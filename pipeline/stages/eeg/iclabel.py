"""ICLabel as the eeg stage's component labeler (``eeg.ica_labeler: iclabel``, raw BDF only).

``mne-icalabel`` classifies ICA components with the network EEGLAB's ICLabel trained on 1-100 Hz,
average-referenced data decomposed by extended infomax; its weights ship inside the package (no
download). So the fit is on a 256 Hz copy of the raw recording (Nyquist 128 Hz, above the 100 Hz
edge) band-passed 1-100 Hz, and the exclusion is applied to the stage's own 1-50 Hz, 128 Hz data
through the sensor-space matrices: ICA is a spatial filter, the same at any sampling rate.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import mne
import numpy as np

from pipeline.readers import deap_format as fmt
from pipeline.stages.eeg.mne_tools import (
    MNE_VERBOSE,
    MONTAGE,
    UV_PER_V,
    IcaResult,
    bandpassed_raw,
    continuous_raw,
    eog_flags,
    sensor_space,
)
from pipeline.stages.eeg.params import (
    ICLABEL_CLASSES,
    ICLABEL_EXCLUDED,
    FilterIcaParams,
)
from pipeline.errors import ParameterError

ICLABEL_BAND = (1.0, 100.0)
"""The band ICLabel's network was trained on."""

def iclabel_ica(
    *, eeg: np.ndarray, eog: np.ndarray | None, sfreq: float, eeg_high: np.ndarray,
    eog_high: np.ndarray | None, sfreq_high: float, params: FilterIcaParams,
    progress: Callable[[str], None] | None = None,
) -> IcaResult:
    """Fit extended infomax on ``eeg_high`` (1-100 Hz, average reference), label the components
    with ICLabel, remove those whose eye-blink or muscle probability reaches
    ``params.iclabel_threshold`` from ``eeg`` band-passed ``l_freq``-``h_freq``.

    ``eeg``/``eog`` are the ingest arrays (µV, ``sfreq``); ``eeg_high``/``eog_high`` the same
    trials at ``sfreq_high`` (>= 200 Hz). EOG correlations are computed on the fit data, as a
    cross-check (they decide nothing here).
    """
    if sfreq_high / 2 <= ICLABEL_BAND[1]:
        raise ParameterError(
            f"eeg.ica_labeler 'iclabel': the data are sampled at {sfreq_high:g} Hz, ICLabel needs "
            f"a {ICLABEL_BAND[0]:g}-{ICLABEL_BAND[1]:g} Hz band (>= 200 Hz sampling)")
    from mne_icalabel.iclabel import iclabel_label_components

    timings: dict[str, float] = {}
    started = time.perf_counter()
    fit_raw = continuous_raw(eeg=eeg_high, eog=eog_high, sfreq=sfreq_high)
    fit_raw.set_montage(MONTAGE, on_missing="ignore")
    fit_raw.filter(*ICLABEL_BAND, picks="all", skip_by_annotation="edge", phase="zero",
                   fir_design="firwin", verbose=MNE_VERBOSE)
    fit_raw.set_eeg_reference("average", verbose=MNE_VERBOSE)
    timings["filter"] = time.perf_counter() - started

    ica = mne.preprocessing.ICA(
        n_components=params.ica_n_components, method="infomax", fit_params={"extended": True},
        random_state=params.ica_seed, max_iter=params.ica_max_iter, verbose=MNE_VERBOSE)
    if progress is not None:
        progress(f"fitting extended infomax on {sfreq_high:g} Hz, 1-100 Hz data for ICLabel")
    started = time.perf_counter()
    ica.fit(fit_raw, picks="eeg", verbose=MNE_VERBOSE)
    timings["ica_fit"] = time.perf_counter() - started

    started = time.perf_counter()
    with warnings.catch_warnings():
        # It warns that the data are not filtered exactly as it wants when they are: not news.
        warnings.simplefilter("ignore", RuntimeWarning)
        probabilities = np.asarray(iclabel_label_components(fit_raw, ica, backend="torch"), dtype=np.float32)
    timings["iclabel"] = time.perf_counter() - started
    columns = [ICLABEL_CLASSES.index(c) for c in ICLABEL_EXCLUDED]
    excluded = sorted(int(k) for k in np.flatnonzero(
        probabilities[:, columns].max(axis=1) >= params.iclabel_threshold))

    use_eog = eog_high is not None and params.use_eog_channels
    eog_reference = list(fmt.EOG_CHANNELS if use_eog else ("Fp1", "Fp2"))
    started = time.perf_counter()
    flagged_by, excluded_by, scores = eog_flags(ica, fit_raw, eog_reference, params)
    timings["find_bads_eog"] = time.perf_counter() - started

    started = time.perf_counter()
    n_trials, n_eeg, n_samples = eeg.shape
    mixing, unmixing, _ = sensor_space(ica, n_eeg)
    band = bandpassed_raw(eeg=eeg, eog=eog, sfreq=sfreq, params=params)
    data = band.get_data(picks="eeg") * UV_PER_V
    channel_mean = data.mean(axis=1)
    sources = unmixing[excluded] @ (data - channel_mean[:, None])
    cleaned = data - mixing[:, excluded] @ sources
    timings["apply"] = time.perf_counter() - started

    def trials_of(continuous: np.ndarray) -> np.ndarray:
        return continuous.reshape(len(continuous), n_trials, n_samples).transpose(1, 0, 2)

    n_iter = int(ica.n_iter_)
    return IcaResult(
        cleaned=trials_of(cleaned).astype(np.float32),
        eog_filtered=(None if eog is None else
                      trials_of(band.get_data(picks="eog") * UV_PER_V).astype(np.float32)),
        excluded=excluded, excluded_by=excluded_by, flagged_by=flagged_by, scores=scores,
        eog_reference=eog_reference, n_components=int(ica.n_components_), n_iter=n_iter,
        converged=n_iter < params.ica_max_iter, mixing=mixing, unmixing=unmixing,
        channel_mean=channel_mean, timings=timings, label_probabilities=probabilities)
