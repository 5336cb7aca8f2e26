"""The demo's last lines: what was learned, against chance and against a probe on the same data.

    .venv/bin/python scripts/demo_summary.py RUN_DIR STUDY_DIR

Reads the fusion run's ``metrics.json`` and the tokenizer study's ``study.json``, which holds the
yardstick for EEG heads (``train.probe``: logistic regression on log band power) that
``milmer ablate tokenizers`` fitted on the same store, protocol and folds, then says in plain
words what the heads learned.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("study", type=Path)
    args = parser.parse_args()

    metrics = json.loads((args.run / "metrics.json").read_text())
    tokenizer = json.loads((args.run / "config.json").read_text())["model"]["eeg_tokenizer"]
    folds = [f["accuracy"] for f in metrics["folds"]]
    margin = metrics["accuracy"] - metrics["chance"]
    study = json.loads((args.study / "study.json").read_text())
    rows = {r["preset"]: r for r in study["rows"]}
    probe = study["probes"][0]["eeg"]
    best = max(rows.values(), key=lambda r: r["accuracy_mean"])

    print(f"Fusion heads ({metrics['model']}, EEG tokenizer {tokenizer}), {metrics['labels']}, "
          f"protocol {metrics['protocol']} (whole test trials never seen in training), "
          f"{len(folds)} folds, epoch chosen on validation trials:")
    print(f"  accuracy {metrics['accuracy']:.3f} on {metrics['n_test']} held-out windows "
          f"(per fold {', '.join(f'{a:.3f}' for a in folds)}, std {np.std(folds):.3f}); "
          f"chance (majority class) {metrics['chance']:.3f}: "
          f"{margin:+.3f}, {'above' if margin > np.std(folds) else 'NOT clearly above'} chance "
          "by more than the spread over folds.")
    print(f"EEG alone: the best tokenizer ({best['label']}) reaches {best['accuracy_mean']:.3f} ± "
          f"{best['accuracy_std']:.3f}, the paper's raw tokenizer {rows['eeg-raw']['accuracy_mean']:.3f}; "
          f"a logistic regression on log band power of the same windows and folds reaches "
          f"{probe['accuracy']:.3f} (the EEG ceiling a linear read-out sees): the spectral tokenizer "
          f"gets {best['accuracy_mean'] / probe['accuracy']:.0%} of it.")
    print("The face tokens come from RANDOM Swin weights and a synthetic face whose expression "
          "carries the planted cue (generator v2, 'easy'): they say nothing about real faces. "
          "Whole-frame colour is drawn independently of the ratings (tests/test_synth_difficulty.py holds "
          "its probe at chance on 96 videos); on a dataset this small (36 videos) a colour probe "
          "can still land 0.1 off chance by luck, so small face margins here prove little. The "
          "paper fine-tunes Swin in the loop; this project caches a frozen Swin's tokens.")


if __name__ == "__main__":
    main()
