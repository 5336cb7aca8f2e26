"""Yardsticks for the heads: logistic regressions on simple features of the same windows.

What a linear model reaches from the per-channel log band powers (the features of the spectral
tokenizers, :mod:`train.models.eeg_tokenizers`), under the same protocol and folds as a run:
fitted on each fold's training rows (standardised with their statistics), tested on its test
rows, predictions pooled over folds. An EEG head that stays far below it is not learning what
the windows carry.

:func:`modality_probes` adds the face (the mean of every frame's tokens) and their fusion (a
weighted sum of the two probes' log-probabilities), with every choice made on validation
trials carved out of each training fold: what a linear read-out of each modality reaches, and
what a late fusion of the two adds. A fusion head below the fused probe is not combining the
modalities; a head can go above it (a late fusion of two linear read-outs is not a ceiling: on
the v2 `paper` bench store the transformer fusion reached 0.461 against the fused probe's 0.417).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from store_schema.contract.layout import FRAMES_PER_SEGMENT, TOKEN_DIM
from train.data import Split, StoreData
from train.splits import fit_rows
from train.models.eeg_tokenizers import LOG_POWER_BANDS, band_matrix, log_band_power


def log_band_power_features(data: StoreData, *, bands: Sequence[tuple[float, float]] = LOG_POWER_BANDS,
                            sfreq: float = 128.0) -> np.ndarray:
    """(N, 32 x n_bands) log10 band powers of every row's Hann-windowed channels."""
    eeg = data.eeg_rows(np.arange(len(data)))
    window = torch.hann_window(eeg.shape[-1], periodic=False)
    matrix = band_matrix(tuple(bands), samples=eeg.shape[-1], sfreq=sfreq)
    return log_band_power(eeg, window, matrix).flatten(1).numpy()


def fit_probe(features: np.ndarray, labels: np.ndarray, c: float, seed: int = 0):  # noqa: ANN201
    """The probes' classifier: logistic regression (inverse strength ``c``) on standardised features."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, random_state=seed))
    return model.fit(features, labels)


def band_power_probe(data: StoreData, splits: Sequence[Split], *,
                     bands: Sequence[tuple[float, float]] = LOG_POWER_BANDS, c: float = 1.0,
                     seed: int = 0) -> dict[str, object]:
    """Pooled test accuracy, per-fold accuracies and their mean ± std, of the probe over
    ``splits`` (the shape of each entry of :func:`modality_probes`)."""
    features = log_band_power_features(data, bands=bands)
    correct, total, per_fold = 0, 0, []
    for split in splits:
        probe = fit_probe(features[split.train], data.labels[split.train], c, seed)
        hits = probe.predict(features[split.test]) == data.labels[split.test]
        correct += int(hits.sum())
        total += len(hits)
        per_fold.append(float(hits.mean()))
    return {"accuracy": correct / max(total, 1), "folds": per_fold,
            "mean": float(np.mean(per_fold)), "std": float(np.std(per_fold)),
            "n_features": features.shape[1], "model": f"logistic regression (C={c}) on standardised log band power, "
                     f"{len(bands)} bands x 32 channels"}


PROBE_C = (0.01, 0.1, 1.0)
"""Inverse regularisation strengths each modality's probe chooses from, on validation."""
FUSION_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
"""Weights w of the EEG probe's log-probabilities in ``log p_face + w log p_eeg``; w = 0 is the
face alone, and the EEG alone is tried too."""


def mean_token_features(data: StoreData, *, chunk: int = 64) -> np.ndarray:
    """(N, 768): the mean of every frame's 49 tokens, per row (read in chunks when streaming)."""
    out = np.empty((len(data), TOKEN_DIM), np.float32)
    for rows, tokens in data.token_chunks(np.arange(len(data)), chunk=chunk):
        out[rows] = tokens.float().mean(dim=(1, 2)).numpy()
    return out


def _log_proba(model, features: np.ndarray, n_classes: int) -> np.ndarray:  # noqa: ANN001
    """(n, n_classes) log-probabilities; a class absent from the fit rows gets -30."""
    out = np.full((len(features), n_classes), -30.0)
    out[:, model.classes_] = np.log(np.clip(model.predict_proba(features), 1e-12, None))
    return out


def _log_likelihood(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean log-probability of the true class after a softmax over ``scores`` (n, classes)."""
    normalised = scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)
    return float(np.mean(normalised[np.arange(len(labels)), labels])) if len(labels) else 0.0


def modality_probes(data: StoreData, splits: Sequence[Split], *, validation_fraction: float = 0.2,
                    seed: int = 0) -> dict[str, object]:
    """EEG (log band power), face (mean token) and fused probes over ``splits``.

    Per fold: validation trials are held out of the training rows as the trainer does
    (:meth:`StoreData.hold_out_validation`); each modality's C is chosen on them among
    :data:`PROBE_C`, then the fusion weight among :data:`FUSION_WEIGHTS` (and the EEG alone),
    each by the validation log-likelihood of the true class (on ~150 windows accuracy is too
    coarse: measured on the v2 `paper` store, it let one fold pick the EEG alone and the fused
    probe gained 0.019 over the face, against 0.042 chosen by likelihood);
    each probe is refitted on all training rows with its choices and the test fold is predicted
    once. ``data`` must hold face tokens (``needs_tokens``)."""
    labels, n_classes = data.labels, len(data.class_names)
    features = {"eeg": log_band_power_features(data), "face": mean_token_features(data)}
    per_fold: dict[str, list[float]] = {"eeg": [], "face": [], "fusion": []}
    correct = {k: 0 for k in per_fold}
    choices = []
    for split in splits:
        fit, val = ((fit_rows(split), split.validation) if split.validation is not None else
                    data.hold_out_validation(split.train, fraction=validation_fraction, seed=seed,
                                             fold=split.fold))
        chosen_c, val_logp = {}, {}
        for name, x in features.items():
            scored = []
            for c in PROBE_C:
                logp = _log_proba(fit_probe(x[fit], labels[fit], c, seed), x[val], n_classes)
                scored.append((_log_likelihood(logp, labels[val]), -c, c, logp))
            best = max(scored, key=lambda t: t[:2])  # ties: the stronger regularisation
            chosen_c[name], val_logp[name] = best[2], best[3]
        candidates = [(w, 1.0) for w in FUSION_WEIGHTS] + [(1.0, 0.0)]  # (EEG weight, face weight)
        likelihood = [_log_likelihood(w * val_logp["eeg"] + f * val_logp["face"], labels[val])
                      for w, f in candidates]
        w_eeg, w_face = candidates[int(np.argmax(likelihood))]
        test_logp = {name: _log_proba(fit_probe(x[split.train], labels[split.train], chosen_c[name],
                                                seed), x[split.test], n_classes)
                     for name, x in features.items()}
        fused = w_eeg * test_logp["eeg"] + w_face * test_logp["face"]
        for name, logp in (*test_logp.items(), ("fusion", fused)):
            hits = logp.argmax(1) == labels[split.test]
            per_fold[name].append(float(hits.mean()))
            correct[name] += int(hits.sum())
        choices.append({"fold": split.fold, "c_eeg": chosen_c["eeg"], "c_face": chosen_c["face"],
                        "w_eeg": w_eeg, "w_face": w_face})
    total = sum(len(s.test) for s in splits)
    return {name: {"accuracy": correct[name] / max(total, 1), "folds": per_fold[name],
                   "mean": float(np.mean(per_fold[name])), "std": float(np.std(per_fold[name]))}
            for name in per_fold} | {
        "choices": choices,
        "model": ("logistic regressions on standardised features: EEG log band power "
                  f"({len(LOG_POWER_BANDS)} bands x 32 channels), face the mean of the "
                  f"{FRAMES_PER_SEGMENT} frames' tokens; fusion log p_face + w log p_eeg; C and w "
                  "chosen by log-likelihood on validation trials of each training fold")}
