"""What Prefect costs around the stage functions, and threads vs processes for CPU-bound stages.

Measured in one run:

1. Orchestration overhead per subject-stage: the flow on a store where every subject-stage is
   skipped (the stage function returns after reading one commit record), for few and for many
   subjects; the slope (seconds per extra subject-stage) is Prefect + task runner around a no-op.
2. A fully skipped re-run for 2 subjects, end to end (what a user waits for).
3. The EEG chain for full-size subjects (40 trials x 63 s) with worker threads vs worker
   processes on this machine's cores.

    .venv/bin/python benchmarks/flow_overhead.py [--full-subjects 2] [--skip-full]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from flows.config import PreprocessConfig
from flows.preprocess import run_chain_inline, run_flow
from pipeline.synth import SynthParams, write_synthetic_deap


def timed(config: PreprocessConfig) -> float:
    started = time.perf_counter()
    summary = run_flow(config)
    assert summary.ok, summary.markdown()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-subjects", type=int, default=2)
    parser.add_argument("--skip-full", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = tmp / "small"
        write_synthetic_deap(out=small, params=SynthParams(subjects=8, trials=2, seconds=3, videos=False))
        store = str(tmp / "small.zarr")
        eeg_only = ["ingest", "eeg", "segment"]
        run_chain_inline(PreprocessConfig(deap=small, store=store, stages=eeg_only))  # all committed
        few = PreprocessConfig(deap=small, store=store, subjects=[1, 2], runner="threads", stages=eeg_only)
        many = PreprocessConfig(deap=small, store=store, runner="threads", stages=eeg_only)
        timed(few)  # warm-up: Prefect's database migrations
        few_s = min(timed(few) for _ in range(2))
        many_s = min(timed(many) for _ in range(2))
        per_stage = (many_s - few_s) / ((8 - 2) * 3)
        started = time.perf_counter()
        run_chain_inline(few)
        inline_s = time.perf_counter() - started
        print("skipped re-run, 2 subjects x 3 stages:")
        print(f"  flow in-process (temporary API, threads) {few_s:7.2f} s")
        print(f"  same subject-stages in a plain loop      {inline_s:7.3f} s")
        print(f"  8 subjects x 3 stages                    {many_s:7.2f} s")
        print(f"overhead per subject-stage (slope)         {per_stage * 1000:7.0f} ms")

        if args.skip_full:
            return
        full = tmp / "full"
        write_synthetic_deap(out=full, params=SynthParams(subjects=args.full_subjects, trials=40,
                                                          seconds=60, videos=False))
        results = {}
        for runner in ("threads", "processes"):
            config = PreprocessConfig(deap=full, store=str(tmp / f"{runner}.zarr"), runner=runner,
                                  stages=["ingest", "eeg", "segment"])
            results[runner] = timed(config)
        print(f"EEG chain, {args.full_subjects} full-size subjects, {os.cpu_count()} cores:")
        for runner, seconds in results.items():
            print(f"  {runner:<9} {seconds:7.1f} s")
        print(f"  ratio threads / processes {results['threads'] / results['processes']:5.2f}")


if __name__ == "__main__":
    main()
