"""Do the spectral presets work on EEG they were not tuned on? Each beside the band-power probe.

For each signal family of the generator (``rhythms``, what the defaults were tuned on, and the
held-out ``contact``: per-trial, per-channel contact gains, other effects, another background;
docs/synthetic.md), this writes ``milmer synth`` (generator v2, ``--difficulty``, no videos), runs
the pipeline's ingest, eeg (band-pass + ICA) and segment stages into a store, then, on the same
windows, protocol and folds:

* the band-power probe (:func:`train.probe.band_power_probe`: logistic regression on standardised
  log power, 22 bands x 32 channels, C = 1);
* each spectral preset (``eeg-log-power``, ``eeg-de``, ``eeg-band-maps``) exactly as
  ``milmer train --config PRESET`` runs it (its model and training fields; ``--epochs`` only
  overrides), EEG only.

It prints per row: test accuracy (pooled over folds), per-fold accuracies, its share of the
probe, and at each fold's validation-chosen epoch the training and validation accuracy (their
gap: memorising training trials shows as train ~1.0 and validation near chance).

    .venv/bin/python benchmarks/eeg_presets.py [--out DIR] [--subjects 3] [--trials 32]
        [--seconds 24] [--labels deap2-arousal] [--folds 4] [--difficulty easy] [--json PATH]

Figures of a run are in docs/results.md (section 2026-12-06, fold 0 only). Cost: ~20-27 CPU
seconds per preset and fold (measured, one torch thread) plus ~40 CPU s per store: about 10
CPU minutes for the default 2 families x 3 presets x 4 folds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PRESETS = ("eeg-log-power", "eeg-de", "eeg-band-maps")
FAMILIES = ("rhythms", "contact")


def build_store(out: Path, family: str, args: argparse.Namespace) -> str:
    deap, store = out / f"deap-{family}", out / f"store-{family}.zarr"
    if not store.exists():
        milmer = [sys.executable, "-m", "flows"]
        subprocess.run([*milmer, "synth", str(deap), "--subjects", str(args.subjects), "--trials",
                        str(args.trials), "--seconds", str(args.seconds), "--no-videos",
                        "--difficulty", args.difficulty, "--eeg-family", family, "--seed",
                        str(args.seed)], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*milmer, "preprocess", "--deap", str(deap), "--store", str(store),
                        "--stages", "ingest,eeg,segment"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return str(store)


def gap_at_selected_epoch(run: Path, metrics: dict) -> tuple[float, float]:
    """Mean over folds of (train accuracy, validation accuracy) at each fold's chosen epoch."""
    train, val = [], []
    for fold in metrics["folds"]:
        history = json.loads((run / "folds" / f"fold{fold['fold']}.json").read_text())["history"]
        row = next(r for r in history if r["epoch"] == fold["selected_epoch"])
        train.append(row["train_accuracy"])
        val.append(row["val_accuracy"])
    return float(np.mean(train)), float(np.mean(val))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-eeg-presets"))
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=24)
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--labels", default="deap2-arousal")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="override the presets' epochs")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from train.config import resolve_config
    from train.data import StoreData
    from train.probe import band_power_probe
    from train.trainer import run_training

    torch.set_num_threads(1)  # as measured
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for family in args.families.split(","):
        store = build_store(args.out, family, args)
        data = StoreData.open(store, labels=args.labels, needs_tokens=False)
        probe = band_power_probe(data, data.splits("trial", folds=args.folds, seed=args.seed))
        print(f"\n{family}: {len(data)} windows, {args.labels}, trial protocol, {args.folds} folds; "
              f"band-power probe {probe['accuracy']:.3f} (folds "
              f"{', '.join(f'{a:.2f}' for a in probe['folds'])})")
        for preset in args.presets.split(","):
            config = resolve_config(preset, store=store, labels=args.labels, folds=args.folds,
                                    seed=args.seed, epochs=args.epochs)
            run = args.out / f"{family}-{preset}"
            started = time.process_time()
            metrics = run_training(config, run, progress=False)
            cpu = time.process_time() - started
            train_acc, val_acc = gap_at_selected_epoch(run, metrics)
            share = metrics["accuracy"] / probe["accuracy"]
            folds = [f["accuracy"] for f in metrics["folds"]]
            print(f"  {preset:14s} {metrics['accuracy']:.3f} ({share:.0%} of the probe; folds "
                  f"{', '.join(f'{a:.2f}' for a in folds)}), epochs {config.epochs} lr "
                  f"{config.lr:g}, chosen {metrics['selected_epochs']}, train {train_acc:.2f} vs "
                  f"validation {val_acc:.2f} at the chosen epoch, {cpu:.0f} CPU s")
            results.append({"family": family, "preset": preset, "accuracy": metrics["accuracy"],
                            "folds": folds, "probe": probe["accuracy"], "probe_folds": probe["folds"],
                            "share_of_probe": share, "train_accuracy": train_acc,
                            "val_accuracy": val_acc, "selected_epochs": metrics["selected_epochs"],
                            "epochs": config.epochs, "lr": config.lr, "cpu_seconds": cpu,
                            "windows": len(data), "labels": args.labels, "folds_k": args.folds})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
