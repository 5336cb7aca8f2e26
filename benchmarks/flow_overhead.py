"""What Prefect costs around the stage functions, what an up-to-date run costs, threads vs processes.

Measured in one run:

1. Orchestration overhead per subject-stage: the flow through Prefect on a store where every
   subject-stage is skipped, for few and for many subjects; the slope (seconds per extra
   subject-stage) is Prefect + task runner around a no-op.
2. 2 full-size subjects (40 trials x 63 s), EEG stages: the full build, then an up-to-date
   `milmer preprocess` end to end as a user runs it (a new process: imports, the plan, no Prefect),
   and the ratio of the two (target <= 0.10); and the same up-to-date run forced through Prefect.
3. The same EEG build with worker threads vs worker processes on this machine's cores.
4. An up-to-date `milmer preprocess` over all five stages (faces and tokens included, random
   weights) against `milmer store info` on the same store, each in a new process, best of 3:
   deciding that nothing needs computing must not import MNE, OpenCV or torch (target <= 2.5x).

    .venv/bin/python benchmarks/flow_overhead.py [--full-subjects 2] [--skip-full] [--skip-processes]
                                                  [--only-up-to-date]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flows.config import PreprocessConfig
from flows.preprocess import run_chain_inline, run_flow
from pipeline.synth import SynthParams, write_synthetic_deap

EEG_STAGES = ["ingest", "eeg", "segment"]


def timed(config: PreprocessConfig, *, through_prefect: bool = False) -> float:
    started = time.perf_counter()
    summary = run_flow(config, skip_when_up_to_date=not through_prefect)
    assert summary.ok, summary.markdown()
    return time.perf_counter() - started


def cli_seconds(deap: Path, store: str) -> float:
    """`milmer preprocess` in a fresh process, as a user waits for it."""
    milmer = Path(sys.executable).parent / "milmer"
    started = time.perf_counter()
    done = subprocess.run([str(milmer), "preprocess", "--deap", str(deap), "--store", store,
                           "--stages", ",".join(EEG_STAGES)], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert done.returncode == 0 and "up to date" in done.stdout, done.stdout + done.stderr
    return seconds


def best_of(command: list[str], runs: int = 3) -> float:
    """Best wall time of ``command`` in a new process (exit 0 required)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        assert done.returncode == 0, done.stdout + done.stderr
    return min(times)


def up_to_date_vs_store_info(tmp: Path) -> None:
    """Section 4: an up-to-date run of every stage against `milmer store info`."""
    milmer = str(Path(sys.executable).parent / "milmer")
    deap = tmp / "videos"
    write_synthetic_deap(out=deap, params=SynthParams(subjects=2, trials=2, seconds=3))
    store = str(tmp / "all.zarr")
    run = [milmer, "preprocess", "--deap", str(deap), "--store", store, "--weights", "random"]
    built = subprocess.run(run, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    preprocess_s = best_of(run)
    info_s = best_of([milmer, "store", "info", store])
    print("all five stages, 2 subjects, up to date (new process each, best of 3):")
    print(f"  `milmer preprocess`                           {preprocess_s:7.2f} s")
    print(f"  `milmer store info`                           {info_s:7.2f} s")
    print(f"  ratio preprocess / store info                 {preprocess_s / info_s:7.2f}   (target <= 2.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-subjects", type=int, default=2)
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--skip-processes", action="store_true")
    parser.add_argument("--only-up-to-date", action="store_true", help="section 4 only")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before the run")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        up_to_date_vs_store_info(tmp)
        if args.only_up_to_date:
            return
        small = tmp / "small"
        write_synthetic_deap(out=small, params=SynthParams(subjects=8, trials=2, seconds=3, videos=False))
        store = str(tmp / "small.zarr")
        run_chain_inline(PreprocessConfig(deap=small, store=store, stages=EEG_STAGES))  # all committed
        few = PreprocessConfig(deap=small, store=store, subjects=[1, 2], runner="threads", stages=EEG_STAGES)
        many = PreprocessConfig(deap=small, store=store, runner="threads", stages=EEG_STAGES)
        timed(few, through_prefect=True)  # warm-up: Prefect's database migrations
        few_s = min(timed(few, through_prefect=True) for _ in range(2))
        many_s = min(timed(many, through_prefect=True) for _ in range(2))
        per_stage = (many_s - few_s) / ((8 - 2) * 3)
        print("skipped re-run through Prefect (temporary API, threads):")
        print(f"  2 subjects x 3 stages                    {few_s:7.2f} s")
        print(f"  8 subjects x 3 stages                    {many_s:7.2f} s")
        print(f"overhead per subject-stage (slope)         {per_stage * 1000:7.0f} ms")

        if args.skip_full:
            return
        full = tmp / "full"
        write_synthetic_deap(out=full, params=SynthParams(subjects=args.full_subjects, trials=40,
                                                          seconds=60, videos=False))
        build = PreprocessConfig(deap=full, store=str(tmp / "threads.zarr"), runner="threads",
                                 stages=EEG_STAGES)
        full_s = timed(build)
        noop_cli_s = min(cli_seconds(full, build.store) for _ in range(2))
        noop_prefect_s = timed(build, through_prefect=True)
        print(f"EEG stages, {args.full_subjects} full-size subjects (40 trials x 63 s):")
        print(f"  full build (threads)                          {full_s:7.1f} s")
        print(f"  up-to-date `milmer preprocess` (new process)  {noop_cli_s:7.2f} s   "
              f"= {noop_cli_s / full_s:.3f} of the build (target <= 0.10)")
        print(f"  the same up-to-date run through Prefect       {noop_prefect_s:7.2f} s")
        if args.skip_processes:
            return
        processes_s = timed(PreprocessConfig(deap=full, store=str(tmp / "processes.zarr"),
                                             runner="processes", stages=EEG_STAGES))
        print(f"  full build (processes)                        {processes_s:7.1f} s   "
              f"ratio threads / processes {full_s / processes_s:5.2f}")


if __name__ == "__main__":
    main()
