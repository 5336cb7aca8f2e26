"""The ingest stage's settings: which DEAP source a subject is read from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipeline.readers.deap import PreprocessedFormat

INGEST_CODE_VERSION = "1"
"""Bump when :func:`ingest` computes something different for the same files."""

Source = Literal["preprocessed", "original"]


class IngestParams(BaseModel):
    """Settings of the ingest stage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Source = "preprocessed"
    """``preprocessed``: ``data_preprocessed_python/sNN.dat`` (128 Hz, DEAP's own 4-45 Hz band-pass
    and EOG cleaning). ``original``: ``data_original/sNN.bdf`` (512 Hz raw), read by
    :mod:`pipeline.readers.bdf` into the same shapes (common average, 128 Hz, Geneva order)."""
    preprocessed_format: PreprocessedFormat = "auto"
    """Source ``preprocessed``: ``auto`` reads the ``.dat``, else the ``.mat``; ``dat``/``mat``
    read only that one."""


def libraries(params: IngestParams) -> tuple[str, ...]:
    """Library versions the record keeps: MNE reads the BDF of source ``original``."""
    return ("numpy", "mne") if params.source == "original" else ("numpy",)
