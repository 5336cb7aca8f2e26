"""The yardstick for EEG heads: a logistic regression on log band power of the same windows.

What a linear model reaches from the per-channel log band powers (the features of the spectral
tokenizers, :mod:`train.models.eeg_tokenizers`), under the same protocol and folds as a run:
fitted on each fold's training rows (standardised with their statistics), tested on its test
rows, predictions pooled over folds. An EEG head that stays far below it is not learning what
the windows carry.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from train.data import Split, StoreData
from train.models.eeg_tokenizers import LOG_POWER_BANDS, band_matrix, log_band_power


def log_band_power_features(data: StoreData, *, bands: Sequence[tuple[float, float]] = LOG_POWER_BANDS,
                            sfreq: float = 128.0) -> np.ndarray:
    """(N, 32 x n_bands) log10 band powers of every row's Hann-windowed channels."""
    eeg = data.eeg_rows(np.arange(len(data)))
    window = torch.hann_window(eeg.shape[-1], periodic=False)
    matrix = band_matrix(tuple(bands), samples=eeg.shape[-1], sfreq=sfreq)
    return log_band_power(eeg, window, matrix).flatten(1).numpy()


def band_power_probe(data: StoreData, splits: Sequence[Split], *,
                     bands: Sequence[tuple[float, float]] = LOG_POWER_BANDS, c: float = 1.0,
                     seed: int = 0) -> dict[str, object]:
    """Pooled test accuracy and per-fold accuracies of the probe over ``splits``."""
    features = log_band_power_features(data, bands=bands)
    correct, total, per_fold = 0, 0, []
    for split in splits:
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
        probe.fit(features[split.train], data.labels[split.train])
        hits = probe.predict(features[split.test]) == data.labels[split.test]
        correct += int(hits.sum())
        total += len(hits)
        per_fold.append(float(hits.mean()))
    return {"accuracy": correct / max(total, 1), "folds": per_fold, "n_features": features.shape[1],
            "model": f"logistic regression (C={c}) on standardised log band power, "
                     f"{len(bands)} bands x 32 channels"}
