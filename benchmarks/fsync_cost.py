"""What durable commits cost: the EEG stages of one full-size subject (40 trials x 63 s), with
fsync (the default) and without (``MILMER_FSYNC=0``).

Prints, per stage, its seconds and the seconds spent in fsync (timed around every sync call of
:mod:`store_schema.engine.durable`), and the same stages' seconds without fsync. ``--tokens-array`` also
writes one full-size subject's tokens array (800 segments x 10 x 49 x 768 float16, random: it
barely compresses, as real tokens) and times its fsync: the tokens stage's own compute is not run.

    .venv/bin/python benchmarks/fsync_cost.py [--trials 40] [--seconds 60] [--store-dir DIR] [--tokens-array]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import zarr

from flows.config import PreprocessConfig
from flows.preprocess import run_chain_inline
from pipeline.synth import SynthParams, write_synthetic_deap
from store_schema.engine import durable
from store_schema.engine import store

STAGES = ["ingest", "eeg", "segment"]


def timed_syncs(spent: dict[str, float], current: list[str]) -> None:
    """Wrap the sync calls the store makes, adding their seconds to the running stage."""
    for name in ("fsync_tree", "fsync_parents", "replace_json_durably"):
        real = getattr(durable, name)

        def wrapper(*args, _real=real, **kwargs):  # noqa: ANN002, ANN003, ANN202
            started = time.perf_counter()
            try:
                return _real(*args, **kwargs)
            finally:
                spent[current[0]] += time.perf_counter() - started

        setattr(store, name, wrapper)  # store.py imported them by name


def tokens_array_sync_seconds(folder: Path, segments: int) -> tuple[float, float, int]:
    """Write a tokens-shaped array as the store does (one segment per chunk, blosc-lz4), then
    fsync it: (write seconds, fsync seconds, bytes)."""
    data = np.random.default_rng(0).standard_normal((segments, 10, 49, 768), dtype=np.float32)
    data = data.astype(np.float16)
    group = zarr.open_group(str(folder / "tokens.zarr"), mode="a").require_group("subjects/s01/tokens")
    codec = zarr.codecs.BloscCodec(cname=store.COMPRESSOR["cname"], clevel=store.COMPRESSOR["clevel"],
                                   shuffle=store.COMPRESSOR["shuffle"])
    array = group.create_array("tokens", shape=data.shape, dtype="float16", chunks=(1, 10, 49, 768),
                               compressors=codec, fill_value=0, config={"write_empty_chunks": True})
    started = time.perf_counter()
    for i in range(segments):
        array[i : i + 1] = data[i : i + 1]
    written = time.perf_counter() - started
    started = time.perf_counter()
    durable.fsync_tree(folder / "tokens.zarr" / "subjects" / "s01" / "tokens", up_to=folder / "tokens.zarr")
    synced = time.perf_counter() - started
    size = sum(p.stat().st_size for p in (folder / "tokens.zarr").rglob("*") if p.is_file())
    return written, synced, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--store-dir", type=Path, default=None,
                        help="Folder for the stores (default: a temporary folder), e.g. on NFS")
    parser.add_argument("--tokens-array", action="store_true",
                        help="Also time the fsync of one full-size subject's tokens array (~575 MiB)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.store_dir) as tmp:
        deap = Path(tmp) / "DEAP"
        write_synthetic_deap(out=deap, params=SynthParams(subjects=1, trials=args.trials,
                                                          seconds=args.seconds, videos=False))
        spent: dict[str, float] = defaultdict(float)
        current = [""]
        timed_syncs(spent, current)
        results = {}
        for label, env in (("fsync", "1"), ("no fsync", "0")):
            os.environ[durable.ENV] = env
            seconds = {}
            for stage in STAGES:
                current[0] = stage
                config = PreprocessConfig(deap=deap, store=str(Path(tmp) / f"{env}.zarr"),
                                          subjects=[1], stages=[stage])
                summary = run_chain_inline(config)
                assert summary.ok, summary.markdown()
                (outcome,) = summary.outcomes
                seconds[stage] = outcome.seconds
            results[label] = seconds
        print(f"one subject, {args.trials} trials x {args.seconds + 3} s; store in {tmp}")
        print(f"{'stage':<8} {'with fsync s':>12} {'in fsync s':>10} {'%':>6} {'without s':>10}")
        for stage in STAGES:
            with_s, sync_s = results["fsync"][stage], spent[stage]
            print(f"{stage:<8} {with_s:12.2f} {sync_s:10.3f} {100 * sync_s / with_s:6.1f} "
                  f"{results['no fsync'][stage]:10.2f}")
        total_with = sum(results["fsync"].values())
        total_sync = sum(spent[s] for s in STAGES)
        print(f"{'all':<8} {total_with:12.2f} {total_sync:10.3f} {100 * total_sync / total_with:6.1f} "
              f"{sum(results['no fsync'].values()):10.2f}")
        if args.tokens_array:
            segments = args.trials * (args.seconds // 3)
            written, synced, size = tokens_array_sync_seconds(Path(tmp), segments)
            print(f"tokens array of {segments} segments, {size / 2**20:.0f} MiB: written in "
                  f"{written:.2f} s, fsync {synced:.2f} s")


if __name__ == "__main__":
    main()
