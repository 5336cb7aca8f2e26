"""The ``hf`` format of :mod:`store_schema.views.export`: one Hugging Face ``datasets`` split per
subject, written as it is generated (``Dataset.from_generator``, Arrow batches of 64 rows) and saved
with ``save_to_disk``; ``dataset_dict.json`` lists the splits so that ``load_from_disk(OUT)`` gives
a ``DatasetDict``. Imports ``datasets`` only when called."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import numpy as np


WRITER_BATCH = 64
"""Rows per Arrow record batch while generating (64 segments of tokens: ~47 MB)."""


def features(arrays: dict[str, np.ndarray]) -> Any:
    """The ``datasets.Features`` of a subject's per-segment arrays: fixed-shape arrays as
    ``Array2D``..``Array5D``, vectors as fixed-length lists, scalars as values."""
    from datasets import Array2D, Array3D, Array4D, Array5D, Features, List, Value

    fixed = {2: Array2D, 3: Array3D, 4: Array4D, 5: Array5D}
    spec: dict[str, Any] = {"subject": Value("int64")}
    for key, value in arrays.items():
        if key == "subject":
            continue
        dtype, shape = str(value.dtype), value.shape[1:]
        if not shape:
            spec[key] = Value(dtype)
        elif len(shape) == 1:
            spec[key] = List(Value(dtype), length=shape[0])
        else:
            spec[key] = fixed[len(shape)](shape=tuple(shape), dtype=dtype)
    return Features(spec)


def _rows(arrays: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    """One dict per segment of a subject's per-segment arrays (the hf rows)."""
    per_segment = {k: v for k, v in arrays.items() if k != "subject"}
    n = len(arrays["segment.trial_index"])
    subject = int(arrays["subject"])
    for i in range(n):
        yield {"subject": subject, **{k: v[i] for k, v in per_segment.items()}}


def write_subject(out: Path, subject: int, arrays: dict[str, np.ndarray]) -> Path:
    """``OUT/sNN``: the subject's rows as a saved ``datasets.Dataset``."""
    import datasets

    cache = out / ".cache"
    target = out / f"s{subject:02d}"
    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    shutil.rmtree(cache, ignore_errors=True)  # a crashed export's cache would be reused by name
    try:
        ds = datasets.Dataset.from_generator(
            _rows, features=features(arrays), gen_kwargs={"arrays": arrays}, cache_dir=str(cache),
            writer_batch_size=WRITER_BATCH, fingerprint=f"milmer-export-s{subject:02d}")
        if target.exists():
            shutil.rmtree(target)
        ds.save_to_disk(str(target))
        del ds
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if enabled:
            datasets.enable_progress_bars()
    return target


def write_index(out: Path, splits: list[str]) -> None:
    """``dataset_dict.json``: what ``DatasetDict.save_to_disk`` writes beside its splits."""
    (out / "dataset_dict.json").write_text(json.dumps({"splits": splits}) + "\n")
