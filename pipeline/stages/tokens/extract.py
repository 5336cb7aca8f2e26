"""Swin token stage: final-stage Swin-tiny tokens of every face crop, computed once, offline.

For each 224x224 RGB crop the timm ``swin_tiny_patch4_window7_224`` backbone (eval mode) gives
``forward_features`` = (7, 7, 768) NHWC after its final LayerNorm; flattened row-major this is
(49, 768), the same tensor as Hugging Face ``SwinModel(...).last_hidden_state``. Tokens are stored
as float16, (n_seg, 10, 49, 768).

Weights (resolution, checks, the Hugging Face → timm key filter, the content fingerprint) are in
:mod:`pipeline.weights.swin`.

Compute: one code path. On CPU all cores, bf16 autocast where the CPU does bf16 natively (else
float32); on CUDA large batches, autocast (bf16 or fp16), pinned host memory, non-blocking copies, channels_last, and the next batch read (e.g. from
the store) in a background thread while the current one runs.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from pipeline.errors import TokensError, WeightsError
from pipeline.stages.tokens.module import normalisation_tensors, normalise_crops
from pipeline.stages.tokens.params import DEFAULT_BATCH_SIZE, TokensParams
from pipeline.weights.swin import load_backbone, resolve_weights
from store_schema.contract.layout import CROP_SIZE, FRAMES_PER_SEGMENT, N_TOKENS, TOKEN_DIM

# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


class CropArray(Protocol):
    """What :func:`tokens_for_subject` reads crops from: a numpy array or a ``zarr.Array``."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> Any: ...

    def __getitem__(self, key: Any) -> Any: ...


_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
OutDtype = Literal["float16", "float32"]
_OUT_DTYPES: dict[str, torch.dtype] = {"float16": torch.float16, "float32": torch.float32}
_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class TokenExtractor:
    """A loaded Swin-tiny backbone that turns uint8 crops into float16 tokens.

    Load once, use for every subject. ``weights`` is a path, ``"random"`` / ``"random:<seed>"``;
    ``params`` defaults to :meth:`TokensParams.from_weights`; when given, its fingerprint must be
    that of ``weights`` (a file changed since the fingerprint was taken is refused).
    """

    def __init__(self, *, weights: str | Path | None, params: TokensParams | None = None,
                 prefetch: int = 2) -> None:
        self.source = resolve_weights(weights)
        if params is None:
            params = TokensParams(weights_fingerprint=self.source.fingerprint)
        if params.weights_fingerprint != self.source.fingerprint:
            raise WeightsError(
                f"{self.source.describe()}: content fingerprint {self.source.fingerprint} differs "
                f"from the parameters' {params.weights_fingerprint}; the weights changed since "
                "the parameters were made: make them again from the same weights")
        self.params = params.resolved()
        self.device = torch.device(self.params.device)
        self.amp_dtype = _AMP_DTYPES.get(self.params.amp)
        self.batch_size = self.params.batch_size or DEFAULT_BATCH_SIZE[self.device.type]
        self.prefetch = max(1, prefetch)
        if self.device.type == "cpu":
            threads = self.params.num_threads or _usable_cores()
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        model, self.normalisation = load_backbone(self.source, model_name=self.params.model_name)
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self._mean, self._inv_std = normalisation_tensors(self.normalisation, self.device)

    @property
    def random_weights(self) -> bool:
        return self.source.random

    @property
    def compute_dtype(self) -> str:
        return {"bf16": "bfloat16", "fp16": "float16"}.get(self.params.amp, "float32")

    def record(self) -> dict[str, Any]:
        """JSON metadata worth keeping beside the tokens."""
        return {
            "model_name": self.params.model_name,
            "weights_fingerprint": self.source.fingerprint,
            "weights_kind": self.source.kind,
            "random_weights": self.source.random,
            "weights": self.source.provenance(),
            "normalisation": self.normalisation.as_dict(),
            "device": str(self.device),
            "device_name": (torch.cuda.get_device_name(self.device) if self.device.type == "cuda"
                            else "cpu"),
            "compute_dtype": self.compute_dtype,
            "batch_size": self.batch_size,
            "torch_threads": torch.get_num_threads(),
        }

    # -- the pipeline ----------------------------------------------------------------------

    def extract(self, crops: np.ndarray, *, out_dtype: OutDtype = "float16") -> np.ndarray:
        """Tokens of ``crops`` (N, 224, 224, 3) uint8 RGB: (N, 49, 768) float16.

        ``out_dtype="float32"`` skips the final cast (for checks against a reference model).
        """
        crops = _check_frames(np.asarray(crops), where="crops")
        batches = (crops[i:i + self.batch_size] for i in range(0, len(crops), self.batch_size))
        out = list(self.extract_batches(batches, out_dtype=out_dtype))
        return np.concatenate(out) if out else np.empty((0, N_TOKENS, TOKEN_DIM), out_dtype)

    def extract_batches(self, batches: Iterable[np.ndarray], *,
                        out_dtype: OutDtype = "float16") -> Iterator[np.ndarray]:
        """Tokens of each batch, in order, while the next batches are fetched in a thread.

        ``batches`` yields uint8 (B, 224, 224, 3) arrays (it may read them from a store: that
        reading runs in a background thread, overlapped with the forward pass of the batch
        before). On CUDA the host copy is pinned and sent non-blocking, and the tokens of batch
        ``i`` are copied back while batch ``i + 1`` is queued. An error in ``batches`` is raised
        here with its own type.
        """
        pending: tuple[torch.Tensor, Any] | None = None
        for host in _prefetched(batches, self._to_host, depth=self.prefetch):
            launched = self._launch(host, _OUT_DTYPES[out_dtype])
            if pending is not None:
                yield _finish(*pending)
            pending = launched
        if pending is not None:
            yield _finish(*pending)

    def _to_host(self, batch: np.ndarray) -> torch.Tensor:
        """Background thread: check, make contiguous, pin (CUDA)."""
        tensor = torch.from_numpy(np.ascontiguousarray(_check_frames(np.asarray(batch), where="batch")))
        return tensor.pin_memory() if self.device.type == "cuda" else tensor

    def _launch(self, host: torch.Tensor, out_dtype: torch.dtype) -> tuple[torch.Tensor, Any]:
        """Queue one batch: copy in, normalise, forward, tokens to float16, copy out."""
        cuda = self.device.type == "cuda"
        with torch.inference_mode():
            x = normalise_crops(host.to(self.device, non_blocking=True), self._mean, self._inv_std)
            amp = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype
                   else contextlib.nullcontext())
            with amp:
                features = self.model.forward_features(x)  # (B, 7, 7, 768), after the final norm
            tokens = features.flatten(1, 2).to(out_dtype)
            if not cuda:
                return tokens, None
            out = torch.empty(tokens.shape, dtype=out_dtype, pin_memory=True)
            out.copy_(tokens, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            return out, event

    def __repr__(self) -> str:
        return (f"TokenExtractor({self.params.model_name}, {self.source.describe()}, "
                f"{self.device}, {self.compute_dtype}, batch {self.batch_size})")


def _finish(out: torch.Tensor, event: Any) -> np.ndarray:
    if event is not None:
        event.synchronize()
    tokens = out.numpy()
    if not np.isfinite(tokens).all():
        raise TokensError(
            "the backbone produced non-finite tokens (inf/nan, e.g. beyond float16's range); check the "
            "weights, or use --device cpu (float32) to see whether reduced precision is the cause")
    return tokens


def _prefetched(items: Iterable[Any], prepare: Callable[[Any], Any], *, depth: int) -> Iterator[Any]:
    """``prepare(item)`` for each item, computed up to ``depth`` items ahead in a thread."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(prepare(item)):
                    return
            put(_DONE)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            put(_Failed(err))

    thread = threading.Thread(target=work, name="tokens-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value = q.get()
            if value is _DONE:
                return
            if isinstance(value, _Failed):
                raise value.error
            yield value
    finally:
        stop.set()
        thread.join(timeout=10)


def _check_frames(frames: np.ndarray, *, where: str) -> np.ndarray:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
        raise TokensError(f"{where}: expected uint8 RGB crops (N, {CROP_SIZE}, {CROP_SIZE}, 3), got "
                          f"{frames.dtype} {frames.shape}")
    return frames


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def segment_batches(n_segments: int, segments_per_batch: int) -> list[slice]:
    """Consecutive slices covering ``range(n_segments)``, each at most ``segments_per_batch``."""
    step = max(1, segments_per_batch)
    return [slice(i, min(i + step, n_segments)) for i in range(0, n_segments, step)]


def tokens_for_subject(
    *,
    crops: CropArray,
    extractor: TokenExtractor,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The token stage of one subject: ``({"tokens": (n_seg, 10, 49, 768) float16}, extra)``.

    ``crops`` is the faces stage's ``crops`` array, (n_seg, 10, 224, 224, 3) uint8, in memory or
    a lazily read ``zarr.Array``: whole segments are read ``batch_size // 10`` at a time (at least
    one) in a background thread while the previous batch runs through the backbone.
    ``progress(frames_done, frames_total)`` is called after every batch.
    """
    shape = tuple(crops.shape)
    if len(shape) != 5 or shape[1:] != (FRAMES_PER_SEGMENT, CROP_SIZE, CROP_SIZE, 3) \
            or np.dtype(crops.dtype) != np.uint8:
        raise TokensError(
            f"crops: expected uint8 (n_segment, {FRAMES_PER_SEGMENT}, {CROP_SIZE}, {CROP_SIZE}, 3) "
            f"from the faces stage, got {np.dtype(crops.dtype)} {shape}; re-run the faces stage")
    n_seg = shape[0]
    slices = segment_batches(n_seg, extractor.batch_size // FRAMES_PER_SEGMENT)
    tokens = np.empty((n_seg, FRAMES_PER_SEGMENT, N_TOKENS, TOKEN_DIM), dtype=np.float16)
    total = n_seg * FRAMES_PER_SEGMENT

    def read() -> Iterator[np.ndarray]:
        for part in slices:
            yield np.asarray(crops[part], dtype=np.uint8).reshape(-1, CROP_SIZE, CROP_SIZE, 3)

    started = time.perf_counter()
    done = 0
    for part, out in zip(slices, extractor.extract_batches(read()), strict=True):
        tokens[part] = out.reshape(-1, FRAMES_PER_SEGMENT, N_TOKENS, TOKEN_DIM)
        done += out.shape[0]
        if progress is not None:
            progress(done, total)
    seconds = time.perf_counter() - started
    extra = {**extractor.record(), "frames": total, "seconds": round(seconds, 3),
             "frames_per_s": round(total / seconds, 3) if total and seconds > 0 else None}
    return {"tokens": tokens}, extra


def subject_tokens(
    *, crops: CropArray, params: TokensParams, weights: str | Path,
    progress: Callable[..., None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The tokens stage: load the backbone for ``weights`` (whose fingerprint ``params`` holds)
    and run every crop of the subject through it; ``progress`` is told the frames done
    (:class:`store_schema.contract.table.StageProgress`)."""
    total = int(crops.shape[0]) * FRAMES_PER_SEGMENT
    if progress is not None:
        progress("loading the backbone", done=0, total=total, unit="frames")
    extractor = TokenExtractor(weights=weights, params=params)
    if progress is not None:
        progress(done=0, total=total, unit="frames")
    return tokens_for_subject(
        crops=crops, extractor=extractor,
        progress=(lambda done, total: progress(done=done, total=total, unit="frames"))
        if progress else None)
