"""The shape of one row of the stage table: everything the runner needs to run a stage.

A row says, for one :class:`~store_schema.contract.layout.Stage` (whose :class:`StageSpec` gives its arrays
and upstreams): its params model, its code version, the libraries to record, what it reads from
the store (:class:`Read`, mapped to keyword arguments), how it names its other inputs for the
fingerprint (``prepare``), and its pure function in ``pipeline/``. The rows themselves live in
:mod:`pipeline.stages`, one per stage package (they name pipeline functions by dotted path, which
this package imports only to compute);
:func:`store_schema.run.runner.run_row` does everything else for every stage alike.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel

from store_schema.contract.layout import Stage

StageResult = tuple[dict[str, np.ndarray], dict[str, Any]]
"""What a stage function returns: arrays by the schema's names, and small JSON for the record."""


@dataclass(frozen=True)
class Read:
    """One keyword argument of a stage function, read from a committed upstream subject-stage:
    an ``array`` (numpy; ``lazy``: the Zarr array, read in slices by the stage), or a value of the
    upstream record's ``extra`` or ``params``."""

    stage: Stage
    array: str | None = None
    extra: str | None = None
    param: str | None = None
    lazy: bool = False

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.array, self.extra, self.param)) != 1:
            raise ValueError("a Read names exactly one of array, extra, param")


class StageProgress(Protocol):
    """What a stage function's ``progress`` is: told a note (``"fitting ICA"``) and/or a count
    (``done`` of ``total`` ``unit``, e.g. frames) as the stage goes; either may be left out."""

    def __call__(self, line: str = "", /, *, done: int | None = None, total: int | None = None,
                 unit: str | None = None) -> None: ...


@dataclass(frozen=True)
class StageContext:
    """What a run knows beyond the stage's params: which subject, where the DEAP folder is, how
    input files are fingerprinted, and where progress goes (the run's reporter)."""

    subject: int
    deap: Path | None = None
    content_hash: bool = False
    progress: StageProgress | None = None


@dataclass(frozen=True)
class Prepared:
    """A stage's settings made concrete on the machine that computes (``prepare``): the params
    to record and hash (paths left out), the inputs it names beside its upstreams (files by
    size+mtime or content, model files by content hash), and keyword arguments for its function
    that are not fingerprinted (where those files lie)."""

    params: BaseModel
    inputs: Mapping[str, str] = field(default_factory=dict)
    kwargs: Mapping[str, Any] = field(default_factory=dict)


Reader = Callable[[Read], Any]
"""Reads one :class:`Read` of the subject being run."""


@dataclass(frozen=True)
class StageRow:
    """One stage: see the module docstring."""

    stage: Stage
    params: type[BaseModel]
    """The settings a run gives the stage (``PreprocessConfig``'s field of the stage's name)."""
    code_version: str
    """Bump when the stage computes something different for the same params and inputs."""
    libraries: Callable[[BaseModel], tuple[str, ...]]
    """The libraries whose versions the record keeps, for the recorded params."""
    function: str
    """``"package.module:function"``, imported only when the stage computes (MNE, OpenCV, torch
    stay out of a run that skips). Keyword-only: ``params``, one argument per :attr:`reads` key,
    ``Prepared.kwargs`` and ``progress`` (a :class:`StageProgress`, which also marks the stage's
    ``mid-compute`` failpoint)."""
    reads: Mapping[str, Read] = field(default_factory=dict)
    prepare: Callable[[BaseModel, StageContext, Reader], Prepared] | None = None
    """Cheap (file stats, hashes of small files): it runs before the skip decision."""
    warnings: Callable[[dict[str, Any]], list[str]] | None = None
    """Problems of a computed stage that did not stop it, from its ``extra``, for the summary."""

    def load_function(self) -> Callable[..., StageResult]:
        """The stage's function, imported now."""
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)
