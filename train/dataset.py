"""``StoreDataset``: a feature store as a map-style :class:`torch.utils.data.Dataset`, for models of
one's own (docs/dataset.md).

It is :class:`~train.data.StoreData` (the trainer's reader) behind PyTorch's interface: the same
usable subjects, the same refusals (stale stages skip a subject; token sets of different Swin
weights are refused; face models drop segments without a face video unless ``keep_faceless``),
the same labels and the same folds (:mod:`train.splits`). Item ``i`` is segment ``i`` of that flat
index, a dict::

    eeg        float32 (32, 384)            µV, 3 s at 128 Hz, channels in Geneva order
    tokens     float16 (10, 49, 768)        Swin-tiny final-stage tokens of the 10 frames
    crops      uint8   (10, 224, 224, 3)    RGB face crops (only when asked)
    label      int                          class of ``labels`` (names: ``class_names``)
    subject, trial, segment   int           subject number, 0-based .dat trial, window in trial
    has_video  bool                         the segment's face video was usable
    detected   bool    (10,)                a face was detected in each frame

Only the ``modalities`` asked for are read. Rows are read from the store when asked for (a batch
at once through ``__getitems__``, which :class:`~torch.utils.data.DataLoader` calls); nothing is
held in memory but the index. With ``DataLoader(num_workers>0)`` every worker process opens the
store itself, by its URL (a store on object storage takes its credentials from the environment,
as fsspec does), the first time it reads: the dataset never shares an open store across processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from store_schema.contract.labels import Deap3Boundaries, LabelScheme
from store_schema.contract.layout import Stage
from store_schema.contract.staleness import stale_reason
from store_schema.engine.store import FeatureStore
from store_schema.errors import StoreError
from train.data import StoreData
from train.splits import PARTS, folds_from_manifest, make_manifest, read_manifest, with_validation

MODALITIES = ("eeg", "tokens", "crops")


class StoreDataset(torch.utils.data.Dataset):
    """Every usable segment of a feature store, one item (a dict) per segment.

    ``store``: a folder, an fsspec URL or an open :class:`FeatureStore`; ``subjects``: subject
    numbers (default: every usable one); ``labels``: ``deap4``, ``deap2-valence``,
    ``deap2-arousal``, ``deap3-valence`` or ``deap3-arousal`` (``boundaries`` for DEAP-3);
    ``modalities``: any of ``eeg``, ``tokens``, ``crops``. Raises
    :class:`store_schema.errors.StoreError` when no subject is usable or token weights mix.
    """

    def __init__(self, store: str | Path | FeatureStore, subjects: Sequence[int] | None = None,
                 labels: LabelScheme | str = "deap4",
                 modalities: Sequence[str] = ("eeg", "tokens"), *,
                 boundaries: Deap3Boundaries = Deap3Boundaries(), keep_faceless: bool = False) -> None:
        unknown = sorted(set(modalities) - set(MODALITIES))
        if unknown or not modalities:
            raise ValueError(f"modalities {list(modalities)}: choose among {', '.join(MODALITIES)}")
        self.modalities = tuple(dict.fromkeys(modalities))
        self.data = StoreData.open(str(store) if isinstance(store, Path) else store, labels=labels,
                                   boundaries=boundaries, subjects=subjects,
                                   needs_tokens="tokens" in self.modalities,
                                   keep_faceless=keep_faceless)
        if "crops" in self.modalities:
            for s in self.data.subject_numbers:
                reason = ("not committed" if self.data.store.record(s, Stage.faces) is None
                          else stale_reason(self.data.store, s, Stage.faces))
                if reason:
                    raise StoreError(f"{self.data.store.url}: s{s:02d} faces stage {reason}; crops "
                                     "need it (re-run `milmer preprocess --stages faces`, or pick "
                                     "subjects)")
        self._pid = os.getpid()

    # -- facts -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.data)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.data.class_names

    @property
    def labels(self) -> np.ndarray:
        """(N,) int: every item's label, without reading the store (for stratifying, weighting)."""
        return self.data.labels

    @property
    def subjects(self) -> list[int]:
        """The usable subjects (the ones asked for, less those listed in :attr:`skipped`)."""
        return self.data.subject_numbers

    @property
    def skipped(self) -> list[str]:
        """One line per subject left out, and why."""
        return self.data.skipped

    @property
    def weights_fingerprint(self) -> str | None:
        """The Swin weights every token came from (``random:<seed>`` for random weights)."""
        return self.data.weights_fingerprint

    # -- folds -------------------------------------------------------------------------------

    def splits(self, protocol: str = "trial", *, folds: int = 5, seed: int = 0,
               validation_fraction: float = 0.2) -> dict[str, Any]:
        """A split manifest of this data, drawn as ``milmer train`` draws it (the same folds for
        the same subjects, labels and seed)."""
        drawn = with_validation(self.data, self.data.splits(protocol, folds=folds, seed=seed),
                                fraction=validation_fraction, seed=seed)
        return make_manifest(self.data, drawn, protocol=protocol, seed=seed, k=folds,
                             validation_fraction=validation_fraction)

    def indices(self, manifest: dict[str, Any] | str | Path, fold: int, part: str) -> np.ndarray:
        """Item indices of ``part`` (train, validation or test) of fold ``fold`` of a manifest
        (a dict, or the path of a ``splits.json``)."""
        if part not in PARTS:
            raise ValueError(f"part {part!r}: train, validation or test")
        where = "manifest" if isinstance(manifest, dict) else str(manifest)
        if not isinstance(manifest, dict):
            manifest = read_manifest(manifest)
        for split in folds_from_manifest(self.data, manifest, where=where):
            if split.fold == fold:
                rows = {"train": split.train[~np.isin(split.train, split.validation)],
                        "validation": split.validation, "test": split.test}[part]
                return np.asarray(rows, np.int64)
        raise ValueError(f"{where}: no fold {fold}")

    def subset(self, manifest: dict[str, Any] | str | Path, fold: int,
               part: str) -> torch.utils.data.Subset:
        """``part`` of fold ``fold`` as a :class:`~torch.utils.data.Subset` of this dataset."""
        return torch.utils.data.Subset(self, self.indices(manifest, fold, part).tolist())

    # -- items -------------------------------------------------------------------------------

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Items ``indices``, their rows read from the store together (concurrent chunk reads)."""
        positions = np.asarray(indices, np.int64)
        if positions.ndim != 1 or (len(positions) and (positions.min() < -len(self)
                                                       or positions.max() >= len(self))):
            raise IndexError(f"index out of range for {len(self)} items")
        positions = positions % max(len(self), 1)
        self._open_here()
        read = {what: torch.from_numpy(self.data.read_rows(what, positions))
                for what in self.modalities if len(positions)}
        d = self.data
        return [{**{what: rows[i] for what, rows in read.items()},
                 "label": int(d.labels[p]), "subject": int(d.subject[p]), "trial": int(d.trial[p]),
                 "segment": int(d.segment_index[p]), "has_video": bool(d.has_video[p]),
                 "detected": torch.from_numpy(d.detected[p].copy())}
                for i, p in enumerate(positions)]

    def _open_here(self) -> None:
        """Open the store in this process if it was opened in another (a forked worker)."""
        if self._pid != os.getpid() or self.data.store is None:
            self.data.store = FeatureStore.open(self._url, mode="r")
            self._pid = os.getpid()

    @property
    def _url(self) -> str:
        return self.data.store.url if isinstance(self.data.store, FeatureStore) else str(self.data.store)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for a spawned worker: the index and the store's URL, never the open store."""
        state = dict(self.__dict__)
        state["data"] = replace(self.data, store=self._url, _eeg=None, _tokens=None)
        state["_pid"] = None
        return state
