"""Split manifests: the exact folds of a run, written beside it and reusable by another run or tool.

Every ``milmer train`` / ``ablate`` run writes ``RUN_DIR/splits.json``; ``--splits FILE`` (the
``splits`` field of :class:`~train.config.TrainConfig`) trains on a manifest's folds exactly.
A manifest names data, never positions, so any reader of the store can use it::

    {"format": "milmer-splits/1", "protocol": "trial", "leaky": false, "seed": 0, "k": 5,
     "validation_fraction": 0.2, "labels": "deap4", "subjects": [1, 2],
     "folds": [{"fold": 0, "name": "fold0",
                "train": [{"subject": 1, "trial": 0, "experiment_id": 1}, ...],
                "validation": [...], "test": [...]}, ...]}

An entry is one trial of one subject (``trial``: the 0-based ``.dat`` trial, ``experiment_id``
= trial + 1, the store's segment table); under the ``segment`` protocol it also lists the
``segments`` (window numbers within the trial) on that side, since one trial's windows are split
between sides. ``train`` excludes the ``validation`` trials carved out of the training fold (the
epoch is chosen on them); ``test`` is evaluated once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from train.config import TrainConfig, TrainError
from train.data import Split, StoreData

FORMAT = "milmer-splits/1"
PARTS = ("train", "validation", "test")


def plan_folds(data: StoreData, config: TrainConfig) -> list[Split]:
    """Every fold of ``config``'s protocol, each with its validation rows drawn: from the
    manifest ``config.splits`` when set (refused when it does not fit the data or the config),
    else by seed (:meth:`StoreData.splits`, :meth:`StoreData.hold_out_validation`)."""
    if config.splits:
        manifest = read_manifest(config.splits)
        for key, asked in (("protocol", config.protocol), ("k", config.folds)):
            if (key == "protocol" or manifest["protocol"] != "loso") and manifest[key] != asked:
                raise TrainError(f"{config.splits}: the manifest's {key} is {manifest[key]!r} but "
                                 f"the run asks {asked!r}; drop the flag or pass the manifest's")
        return folds_from_manifest(data, manifest, where=config.splits)
    return with_validation(data, data.splits(config.protocol, folds=config.folds, seed=config.seed),
                           fraction=config.validation_fraction, seed=config.seed)


def with_validation(data: StoreData, splits: Sequence[Split], *, fraction: float,
                    seed: int) -> list[Split]:
    """``splits`` with each fold's validation trials drawn as the trainer draws them."""
    return [replace(s, validation=data.hold_out_validation(s.train, fraction=fraction, seed=seed,
                                                           fold=s.fold)[1]) for s in splits]


def fit_rows(split: Split) -> np.ndarray:
    """The training rows a model is fitted on: ``train`` without its validation rows."""
    if split.validation is None or not len(split.validation):
        return split.train
    return split.train[~np.isin(split.train, split.validation)]


def manifest_subjects(path: str | None) -> list[int] | None:
    """The subjects a manifest names (``None`` without a manifest)."""
    return None if not path else list(read_manifest(path)["subjects"])


# -- writing -----------------------------------------------------------------------------------


def make_manifest(data: StoreData, splits: Sequence[Split], *, protocol: str, seed: int, k: int,
                  validation_fraction: float) -> dict[str, Any]:
    """The manifest of ``splits`` (folds of ``data``, validation drawn)."""
    segments = protocol == "segment"
    folds = []
    for s in splits:
        validation = s.validation if s.validation is not None else s.train[:0]
        rows = {"train": fit_rows(s), "validation": validation, "test": s.test}
        folds.append({"fold": s.fold, "name": s.name,
                      **{part: _entries(data, rows[part], segments) for part in PARTS}})
    return {"format": FORMAT, "protocol": protocol, "leaky": protocol == "segment", "seed": seed,
            "k": k, "validation_fraction": validation_fraction, "labels": data.scheme.value,
            "subjects": data.subject_numbers, "store": data.store.url, "folds": folds}


def _entries(data: StoreData, positions: np.ndarray, segments: bool) -> list[dict[str, Any]]:
    entries: dict[tuple[int, int], dict[str, Any]] = {}
    for p in np.sort(np.asarray(positions, np.int64)):
        subject, trial = int(data.subject[p]), int(data.trial[p])
        entry = entries.setdefault((subject, trial), {
            "subject": subject, "trial": trial, "experiment_id": trial + 1,
            **({"segments": []} if segments else {})})
        if segments:
            entry["segments"].append(int(data.segment_index[p]))
    return list(entries.values())


def write_manifest(path: Path | str, manifest: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(path)
    return path


# -- reading -----------------------------------------------------------------------------------


def read_manifest(path: Path | str) -> dict[str, Any]:
    """A manifest file, its shape checked; :class:`TrainError` naming the file otherwise."""
    try:
        manifest = json.loads(Path(path).read_text())
    except OSError as err:
        raise TrainError(f"{path}: cannot read the split manifest ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise TrainError(f"{path}: not a split manifest (invalid JSON: {err})") from None
    problem = _malformed(manifest)
    if problem:
        raise TrainError(f"{path}: malformed split manifest ({problem}); use a splits.json that "
                         "`milmer train` wrote")
    return manifest


def _malformed(m: Any) -> str | None:
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        return f"expected an object with \"format\": \"{FORMAT}\""
    if m.get("protocol") not in ("trial", "segment", "loso"):
        return f"protocol {m.get('protocol')!r} is not trial, segment or loso"
    for key in ("seed", "k"):
        if not isinstance(m.get(key), int):
            return f"{key} must be an integer"
    if not (isinstance(m.get("subjects"), list) and m["subjects"]
            and all(isinstance(s, int) for s in m["subjects"])):
        return "subjects must be a non-empty list of subject numbers"
    if not isinstance(m.get("folds"), list) or not m["folds"]:
        return "folds must be a non-empty list"
    for i, fold in enumerate(m["folds"]):
        if not isinstance(fold, dict) or not isinstance(fold.get("fold"), int):
            return f"folds[{i}] needs an integer fold number"
        for part in PARTS:
            entries = fold.get(part)
            if not isinstance(entries, list):
                return f"fold {fold['fold']}: {part} must be a list of trials"
            for e in entries:
                if not (isinstance(e, dict) and isinstance(e.get("subject"), int)
                        and isinstance(e.get("trial"), int)):
                    return f"fold {fold['fold']}: {part} entry {e!r} needs integer subject and trial"
                if m["protocol"] == "segment" and not (
                        isinstance(e.get("segments"), list)
                        and all(isinstance(x, int) for x in e["segments"])):
                    return (f"fold {fold['fold']}: {part} entry s{e['subject']:02d} trial "
                            f"{e['trial']} needs its segments (segment protocol)")
        if not fold["test"]:
            return f"fold {fold['fold']}: no test trial"
    if len({f["fold"] for f in m["folds"]}) != len(m["folds"]):
        return "fold numbers repeat"
    return None


def folds_from_manifest(data: StoreData, manifest: dict[str, Any], *, where: str | Path) -> list[Split]:
    """The manifest's folds as positions into ``data``: every named trial (and segment) must be
    among ``data``'s rows, and a fold's three parts must be disjoint."""
    segments = manifest["protocol"] == "segment"
    lookup: dict[tuple[int, ...], list[int]] = {}
    for p in range(len(data)):
        key = (int(data.subject[p]), int(data.trial[p]))
        lookup.setdefault(key + ((int(data.segment_index[p]),) if segments else ()), []).append(p)
    splits = []
    for fold in manifest["folds"]:
        rows: dict[str, np.ndarray] = {}
        for part in PARTS:
            found: list[int] = []
            for e in fold[part]:
                keys = ([(e["subject"], e["trial"], x) for x in e["segments"]] if segments
                        else [(e["subject"], e["trial"])])
                for key in keys:
                    if key not in lookup:
                        what = f"s{key[0]:02d} trial {key[1]}" + (f" segment {key[2]}" if segments else "")
                        raise TrainError(
                            f"{where}: fold {fold['fold']} {part} names {what}, which the store "
                            f"{data.store.url} lacks among its usable segments (subjects "
                            f"{data.subject_numbers}); use a manifest of this store")
                    found += lookup[key]
            rows[part] = np.unique(np.asarray(found, np.int64))
        for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
            shared = np.intersect1d(rows[a], rows[b])
            if len(shared):
                p = int(shared[0])
                raise TrainError(f"{where}: fold {fold['fold']} has s{int(data.subject[p]):02d} "
                                 f"trial {int(data.trial[p])} in both {a} and {b}; folds must be "
                                 "disjoint")
        train = np.union1d(rows["train"], rows["validation"])
        name = fold.get("name") if isinstance(fold.get("name"), str) else f"fold{fold['fold']}"
        splits.append(Split(fold=fold["fold"], name=name, train=train, test=rows["test"],
                            leaky=segments, validation=rows["validation"]))
    return splits
