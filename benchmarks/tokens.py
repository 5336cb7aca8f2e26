"""Swin token stage speed: bare timm forward vs the whole stage, side by side, in one run.

Prints, per device and precision (CPU in float32 and in bf16 autocast, side by side; CUDA with
its automatic precision when present):
* frames/s of the bare ``forward_features`` on a normalised batch already in memory;
* frames/s of the whole stage: uint8 crops read from a Zarr array chunked like the store's faces
  stage ``(1, 10, 224, 224, 3)``, blosc-lz4 → normalise → forward → float16 tokens written to a Zarr
  array chunked ``(1, 10, 49, 768)``, blosc-lz4 (the store's codec);
* their ratio (target ≥ 0.8);
the bytes per segment of the float16 tokens on disk, the projected time for all of DEAP
(32 subjects x 40 trials x ~13.75 segments x 10 frames ≈ 176,000 frames) at the measured rate,
and on CPU the whole stage's bf16 / float32 rate ratio (target ≥ 2 where bf16 is native) with the
relative difference of their tokens.

Rounds alternate bare and whole runs so that load from other processes hits both alike; the best
round of each is reported, and every round's figures are printed too.

    .venv/bin/python benchmarks/tokens.py [--weights random|PATH] [--segments 9] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from pipeline.stages.tokens.extract import TokenExtractor, tokens_for_subject
from pipeline.stages.tokens.params import TokensParams, cpu_has_native_bf16
from store_schema.contract.layout import FRAMES_PER_SEGMENT, Stage, stage_spec
from store_schema.engine.store import COMPRESSOR

DEAP_FRAMES = 176_000


def _codec() -> zarr.codecs.BloscCodec:
    return zarr.codecs.BloscCodec(cname=COMPRESSOR["cname"], clevel=COMPRESSOR["clevel"],
                                  shuffle=COMPRESSOR["shuffle"])


def _face_like_crops(n_seg: int, seed: int = 0) -> np.ndarray:
    """Smooth images with noise (compress like camera frames do, unlike zeros or pure noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:224, 0:224] / 224.0
    out = np.empty((n_seg, FRAMES_PER_SEGMENT, 224, 224, 3), np.uint8)
    for s in range(n_seg):
        for f in range(FRAMES_PER_SEGMENT):
            ph = rng.uniform(0, 6.28, 3)
            img = np.stack([np.sin(5 * xx + ph[c]) * np.cos(3 * yy + ph[c]) for c in range(3)], -1)
            out[s, f] = np.clip(128 + 80 * img + rng.normal(0, 12, img.shape), 0, 255)
    return out


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bare_forward_fps(extractor: TokenExtractor, batch: int, repeats: int) -> float:
    """frames/s of forward_features alone on a normalised batch held on the device."""
    n = extractor.normalisation
    device = extractor.device
    x = torch.rand(batch, 3, 224, 224, device=device)
    x = ((x - torch.tensor(n.mean, device=device).view(1, 3, 1, 1))
         / torch.tensor(n.std, device=device).view(1, 3, 1, 1)).contiguous(memory_format=torch.channels_last)
    amp = extractor.amp_dtype

    def once() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp or torch.float32,
                                                    enabled=amp is not None):
            extractor.model.forward_features(x).flatten(1, 2).to(torch.float16)

    once()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        once()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - started)


def whole_stage(extractor: TokenExtractor, crops: zarr.Array, out_dir: Path) -> tuple[float, dict]:
    """frames/s of read crops (Zarr) → tokens → write tokens (Zarr); and the stage's extra."""
    started = time.perf_counter()
    arrays, extra = tokens_for_subject(crops=crops, extractor=extractor)
    tokens = arrays["tokens"]
    spec = stage_spec(Stage.tokens).array("tokens")
    target = zarr.create_array(str(out_dir), shape=tokens.shape, dtype="float16",
                               chunks=spec.chunk_shape(tokens.shape), compressors=_codec(),
                               fill_value=0, overwrite=True)
    target[...] = tokens
    seconds = time.perf_counter() - started
    return tokens.shape[0] * FRAMES_PER_SEGMENT / seconds, extra


def bench_device(device: str, args: argparse.Namespace, tmp: Path, amp: str = "auto") -> dict:
    batch_size = args.batch_size or (32 if device == "cpu" else 256)
    params = TokensParams.from_weights(args.weights, device=device, batch_size=batch_size, amp=amp)
    extractor = TokenExtractor(weights=args.weights, params=params)
    frames_per_batch = max(1, batch_size // FRAMES_PER_SEGMENT) * FRAMES_PER_SEGMENT
    n_seg = args.segments or (9 if device == "cpu" else 300)

    crops_np = _face_like_crops(n_seg)
    crops_spec = stage_spec(Stage.faces).array("crops")
    crops = zarr.create_array(str(tmp / f"crops-{device}"), shape=crops_np.shape, dtype="uint8",
                              chunks=crops_spec.chunk_shape(crops_np.shape), compressors=_codec(),
                              fill_value=0, overwrite=True)
    crops[...] = crops_np
    del crops_np
    crops = zarr.open_array(str(tmp / f"crops-{device}"), mode="r")
    repeats = max(1, n_seg * FRAMES_PER_SEGMENT // frames_per_batch)

    print(f"\n== {device}, amp {params.amp}: {extractor!r}")
    print(f"   torch threads {torch.get_num_threads()}, usable cores {len(os.sched_getaffinity(0))}, "
          f"batch {frames_per_batch} frames, {n_seg} segments = {n_seg * FRAMES_PER_SEGMENT} frames per run")
    whole_stage(extractor, crops[:1] if device == "cpu" else crops, tmp / "warmup")  # warm-up
    bare, whole = [], []
    for r in range(args.rounds):
        bare.append(bare_forward_fps(extractor, frames_per_batch, repeats))
        fps, extra = whole_stage(extractor, crops, tmp / f"tokens-{device}")
        whole.append(fps)
        print(f"   round {r + 1}: bare {bare[-1]:8.2f} frames/s   whole {whole[-1]:8.2f} frames/s   "
              f"ratio {whole[-1] / bare[-1]:.3f}   (extraction alone {extra['frames_per_s']:.2f} frames/s)")
    best_bare, best_whole = max(bare), max(whole)
    print(f"   bare forward (batch in memory)     {best_bare:8.2f} frames/s  (best round)")
    print(f"   whole stage (zarr → tokens → zarr) {best_whole:8.2f} frames/s  (best round)")
    ratios = sorted(w / b for w, b in zip(whole, bare))
    print(f"   ratio whole / bare                 {best_whole / best_bare:8.3f}    (target ≥ 0.8; "
          f"per round: median {float(np.median(ratios)):.3f}, min {ratios[0]:.3f})")
    tokens_dir = tmp / f"tokens-{device}"
    per_segment = _dir_bytes(tokens_dir) / n_seg
    raw = FRAMES_PER_SEGMENT * 49 * 768 * 2
    print(f"   tokens on disk: {per_segment:,.0f} bytes/segment (raw {raw:,} B, ratio "
          f"{raw / per_segment:.3f}; weights: {'random' if extractor.random_weights else 'given'})")
    print(f"   crops on disk:  {_dir_bytes(tmp / f'crops-{device}') / n_seg:,.0f} bytes/segment (synthetic)")
    hours = DEAP_FRAMES / best_whole / 3600
    print(f"   projected all of DEAP ({DEAP_FRAMES:,} frames): {hours:8.2f} h at {best_whole:.2f} frames/s")
    sample = np.asarray(crops[:1]).reshape(-1, 224, 224, 3)
    return {"bare": best_bare, "whole": best_whole, "ratios": ratios, "bytes_per_segment": per_segment,
            "sample_tokens": extractor.extract(sample, out_dtype="float32")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="random", help="PATH or random[:seed] (default random)")
    parser.add_argument("--segments", type=int, default=0, help="segments per run (default 9 CPU, 300 CUDA)")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="frames per batch (default 32 CPU, 256 CUDA)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    args = parser.parse_args()

    load = os.getloadavg()
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}; "
          f"load average before the run {load[0]:.2f} (other processes share this machine)")
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else \
        ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            if device != "cpu":
                bench_device(device, args, Path(tmp))
                continue
            fp32 = bench_device("cpu", args, Path(tmp), amp="off")
            bf16 = bench_device("cpu", args, Path(tmp), amp="bf16")
            a, b = fp32["sample_tokens"], bf16["sample_tokens"]
            print(f"\n== cpu bf16 vs float32: whole stage {bf16['whole']:.2f} vs {fp32['whole']:.2f} "
                  f"frames/s = {bf16['whole'] / fp32['whole']:.2f}x (target >= 2 where bf16 is native: "
                  f"{cpu_has_native_bf16()}); bare forward {bf16['bare'] / fp32['bare']:.2f}x; "
                  f"token relative difference {np.linalg.norm(a - b) / np.linalg.norm(a):.4f}")
    print(f"\nload average after the run {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
