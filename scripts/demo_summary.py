"""The demo's last lines: what fusion adds over each modality, fold by fold, in plain words.

    .venv/bin/python scripts/demo_summary.py FUSION_RUN EEG_RUN FACE_RUN [--store STORE]

Reads the three runs' ``metrics.json`` and ``folds/fold<F>.json`` (same store, protocol, folds,
epochs and heads; only the modality differs), puts fusion beside EEG only and face only fold by
fold (won / lost), says whether fusion helps on this dataset, and how quickly training
accuracy reached 1.00 (memorising the training trials) against validation at the chosen epoch.
With ``--store``, also the band-power probe (``train.probe``) of the same windows and folds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    folds = []
    for fold in metrics["folds"]:
        history = json.loads((run / "folds" / f"fold{fold['fold']}.json").read_text())["history"]
        chosen = next(r for r in history if r["epoch"] == fold["selected_epoch"])
        first_perfect = next((r["epoch"] for r in history if r["train_accuracy"] >= 0.999), None)
        folds.append({"fold": fold["fold"], "accuracy": fold["accuracy"], "n_test": fold["n_test"],
                      "chosen": fold["selected_epoch"], "train": chosen["train_accuracy"],
                      "val": chosen["val_accuracy"], "first_perfect": first_perfect})
    return {"metrics": metrics, "folds": folds}


def paired(fusion: dict, other: dict) -> tuple[np.ndarray, int, int]:
    diff = np.array([f["accuracy"] - o["accuracy"]
                     for f, o in zip(fusion["folds"], other["folds"], strict=True)])
    return diff, int((diff > 1e-9).sum()), int((diff < -1e-9).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fusion", type=Path)
    parser.add_argument("eeg", type=Path)
    parser.add_argument("face", type=Path)
    parser.add_argument("--store", default=None)
    args = parser.parse_args()

    runs = {"fusion": load(args.fusion), "EEG only": load(args.eeg), "face only": load(args.face)}
    m = runs["fusion"]["metrics"]
    config = json.loads((args.fusion / "config.json").read_text())
    tokenizer = config["model"]["eeg_tokenizer"]
    k = len(m["folds"])
    print(f"Heads: narrow (EEG tokenizer {tokenizer}), {m['labels']}, protocol {m['protocol']} "
          f"(whole test trials never seen in training), {k} folds, {m['epochs']} epochs, epoch "
          f"chosen on validation trials; chance (majority class) {m['chance']:.3f}.")
    print(f"  {'fold':>4}  {'fusion':>7}  {'EEG only':>8}  {'face only':>9}")
    for i in range(k):
        row = [runs[name]["folds"][i]["accuracy"] for name in runs]
        print(f"  {i:>4}  {row[0]:>7.3f}  {row[1]:>8.3f}  {row[2]:>9.3f}")
    means = {name: float(np.mean([f["accuracy"] for f in r["folds"]])) for name, r in runs.items()}
    print(f"  {'mean':>4}  {means['fusion']:>7.3f}  {means['EEG only']:>8.3f}  "
          f"{means['face only']:>9.3f}")
    verdicts = []
    for name in ("EEG only", "face only"):
        diff, won, lost = paired(runs["fusion"], runs[name])
        print(f"  fusion - {name}: {diff.mean():+.3f} ± {diff.std():.3f} per fold; fusion won "
              f"{won}, lost {lost}, tied {k - won - lost} of {k} folds")
        verdicts.append(won == k and diff.mean() > diff.std())
    best_single = max(means["EEG only"], means["face only"])
    if all(verdicts):
        words = "fusion helps on this dataset: it beats each modality alone in every fold"
    elif means["fusion"] > best_single:
        words = ("fusion does not clearly help on this dataset: its mean is above the best single "
                 "modality, but not in every fold against both")
    else:
        words = (f"fusion does NOT help on this dataset: the best single modality "
                 f"({max(('EEG only', 'face only'), key=means.get)}, {best_single:.3f}) does as well "
                 f"or better")
    print(f"In plain words: {words}.")
    perfect = [f["first_perfect"] for f in runs["fusion"]["folds"]]
    train = np.mean([f["train"] for f in runs["fusion"]["folds"]])
    val = np.mean([f["val"] for f in runs["fusion"]["folds"]])
    trials = ""
    if args.store:
        from train.data import StoreData

        data = StoreData.open(args.store, labels=m["labels"], needs_tokens=False)
        trials = f"with {len(set(zip(data.subject.tolist(), data.trial.tolist())))} trials, "
    if all(p is not None for p in perfect):
        print(f"Memorising: {trials}the fusion heads reach training accuracy 1.00 by epoch "
              f"{', '.join(map(str, perfect))} of {m['epochs']} (per fold): they learn the training "
              f"trials themselves. At the chosen epochs training accuracy is {train:.2f} against "
              f"validation {val:.2f}; expect a wide fold-to-fold spread and read small differences "
              "as noise.")
    else:
        print(f"Training accuracy ({trials}fusion): {train:.2f} at the chosen epochs against "
              f"validation {val:.2f}; it reached 1.00 in {sum(p is not None for p in perfect)} "
              f"of {k} folds.")
    if args.store:
        from train.probe import band_power_probe

        probe = band_power_probe(data, data.splits(m["protocol"], folds=k, seed=config["seed"]))
        print(f"Yardstick: a logistic regression on log band power of the same windows and folds "
              f"reaches {probe['accuracy']:.3f} (EEG only above: {means['EEG only']:.3f}).")
    print("The face tokens come from RANDOM Swin weights and a synthetic face whose expression "
          "carries the planted cue (generator v2, 'easy'): they say nothing about real faces. "
          "Whole-frame colour is drawn independently of the ratings (tests/test_synth_difficulty.py "
          "holds its probe at chance on 48 videos). EEG only also tests the windows of s02 trial "
          "5, which has no video (face models drop them). The paper fine-tunes Swin in the loop; "
          "this project caches a frozen Swin's tokens.")


if __name__ == "__main__":
    main()
