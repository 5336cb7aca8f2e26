"""EEG stages on one subject in full DEAP shape (40 trials x 63 s), measured side by side.

Prints seconds for ingest, eeg (filter, ICA fit, find_bads_eog, apply) and segment; the cost of a
no-op re-run of the same store as a ratio of the full run (target < 1 %); and, for comparison,
the paper's code's way: ICA fitted per trial (40 fits) on the same data.

    .venv/bin/python benchmarks/eeg_stages.py [--trials 40] [--seconds 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mne
import numpy as np

from flows.config import PreprocessConfig
from flows.preprocess import run_chain_inline
from pipeline.readers import deap_format as fmt
from pipeline.readers.deap import load_subject
from pipeline.stages.eeg.params import FilterIcaParams
from pipeline.synth import SynthParams, write_synthetic_deap
from store_schema.engine.store import FeatureStore


def paper_style_ica_seconds(eeg: np.ndarray, params: FilterIcaParams) -> float:
    """One ICA per trial, fitted on that trial only, as the paper's notebook does."""
    info = mne.create_info(list(fmt.EEG_CHANNELS), fmt.SFREQ, ch_types="eeg")
    started = time.perf_counter()
    for trial in eeg:
        raw = mne.io.RawArray(trial.astype(np.float64) * 1e-6, info, verbose="error")
        raw.filter(params.l_freq, params.h_freq, verbose="error")
        ica = mne.preprocessing.ICA(n_components=params.ica_n_components, method="fastica",
                                    random_state=params.ica_seed, max_iter=params.ica_max_iter,
                                    verbose="error")
        ica.fit(raw, verbose="error")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        deap = Path(tmp) / "DEAP"
        write_synthetic_deap(out=deap, params=SynthParams(subjects=1, trials=args.trials, seconds=args.seconds,
                                               videos=False))
        config = PreprocessConfig(deap=deap, store=str(Path(tmp) / "store.zarr"), subjects=[1],
                                  stages=["ingest", "eeg", "segment"])

        started = time.perf_counter()
        full = run_chain_inline(config)
        full_s = time.perf_counter() - started
        assert full.ok, full.failures()
        started = time.perf_counter()
        noop = run_chain_inline(config)
        noop_s = time.perf_counter() - started
        assert {o.status for o in noop.outcomes} == {"skipped"}

        store = FeatureStore.open(config.store, mode="r")
        timings = store.record(1, "eeg").extra["timings_s"]
        eeg = load_subject(deap, 1, check_videos=False).dat.data[:, :32]
        paper_s = paper_style_ica_seconds(eeg, config.eeg)

    print(f"one subject, {args.trials} trials x {args.seconds + 3} s, 32 channels at {fmt.SFREQ} Hz")
    for outcome in full.outcomes:
        print(f"  {outcome.stage.value:<8} {outcome.seconds:8.2f} s")
    for name, seconds in timings.items():
        print(f"    eeg/{name:<14} {seconds:8.2f} s")
    print(f"full run (incl. store open)       {full_s:8.2f} s")
    print(f"no-op re-run                      {noop_s:8.3f} s")
    print(f"ratio no-op / full                {noop_s / full_s:8.2%}  (target < 1 %)")
    ours = sum(o.seconds for o in full.outcomes if o.stage.value == "eeg")
    print(f"paper-code ICA, 40 per-trial fits {paper_s:8.2f} s (filter + fit, nothing excluded)")
    print(f"ratio paper-style / ours (eeg)    {paper_s / ours:8.2f}x")


if __name__ == "__main__":
    main()
