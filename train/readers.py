"""Reading the face input of training batches: where it lives in the store, and the DataLoader
worker processes that read streamed batches (:meth:`train.data.StoreData.batches` with
``read_workers``)."""

from __future__ import annotations

import multiprocessing

import numpy as np
import torch

from store_schema.contract.layout import Stage
from store_schema.engine.store import FeatureStore

ROW_ARRAYS: dict[str, tuple[Stage, str]] = {
    "eeg": (Stage.segment, "eeg"), "tokens": (Stage.tokens, "tokens"), "crops": (Stage.faces, "crops")}
"""Where a segment's rows live in the store, (stage, array): what
:meth:`train.data.StoreData.read_rows` reads, and the face input (``face_from``: tokens or crops)."""


def reader_context() -> multiprocessing.context.BaseContext:
    """Where DataLoader workers come from: a fork server that imported this module once, so a
    worker starts in milliseconds from a clean process. Forking the trainer itself would copy
    whatever threads and locks it holds (Zarr's event loop, a Prefect or Dask client); forked
    workers of a long test session exited with code 1 while being shut down."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def shut_down(iterator: object) -> None:
    """Stop a DataLoader iterator's worker processes now (idempotent; DataLoader offers no public
    close, its ``__del__`` calls the same method)."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


class FaceBatches(torch.utils.data.Dataset):
    """Batch ``i`` of ``chunks`` as a tensor, read in a DataLoader worker (store opened there)."""

    def __init__(self, url: str, subject: np.ndarray, local: np.ndarray, chunks: list[np.ndarray],
                 face_from: str = "tokens") -> None:
        self.url, self.subject, self.local, self.chunks = url, subject, local, chunks
        self.face_from = face_from
        self._store: FeatureStore | None = None

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._store is None:
            self._store = FeatureStore.open(self.url, mode="r")
        rows = self.chunks[i]
        return torch.from_numpy(self._store.read_rows(*ROW_ARRAYS[self.face_from],
                                                      self.subject[rows], self.local[rows]))
