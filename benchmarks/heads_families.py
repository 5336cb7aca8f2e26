"""The demo's and the bench's heads on both EEG families, fusion beside each modality and the probes.

Issue 31 asks that every recommended configuration be reported on data it was not chosen on. The
spectral presets have ``benchmarks/eeg_presets.py`` (EEG only); this one covers the two head
recipes with face tokens: ``scripts/demo_heads.json`` (what ``make demo`` trains, ``log_power``)
and ``scripts/bench_heads.json`` (the studies' heads, ``band_maps``).

For each EEG family of the generator (``rhythms``, what every default was tuned on, and the
held-out ``contact``; docs/synthetic.md) it writes ``milmer synth`` with face videos (generator v2,
``--difficulty``), runs the whole pipeline with random Swin weights (``random:0``, frozen), then
per recipe trains fusion, EEG only and face only exactly as ``milmer train --config RECIPE`` does
(same folds, epochs and seed; only ``--model`` differs) and, on the same windows and folds, the
probes of :func:`train.probe.modality_probes` (EEG log band power, face mean token, the two fused
late, every choice made on validation trials). Per row: test accuracy pooled over folds, per-fold
accuracies, training and validation accuracy at each fold's chosen epoch (mean over folds: their
gap shows memorising), and fusion minus each modality paired by fold (won/lost).

    .venv/bin/python benchmarks/heads_families.py [--out DIR] [--subjects 4] [--trials 16]
        [--seconds 12] [--fps 5] [--labels deap4] [--folds 4] [--epochs 20] [--json PATH]

Face only does not read the EEG and the two recipes differ only in the EEG tokenizer (and the
demo's early stopping, which keeps the epoch a full run chooses): it is trained once per family,
with the demo's recipe, and shown under both. Cost on this 2-core CPU: ~4 min per store (Swin-tiny
over 2,560 frames in bf16) and, with the cores to itself, ~5 min per fusion row, ~1 min per EEG
row, ~3 min per face row: about 40 min for the default 2 families (measured: see docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FAMILIES = ("rhythms", "contact")
RECIPES = {"demo": "scripts/demo_heads.json", "bench": "scripts/bench_heads.json"}
MODELS = {"fusion": "fusion", "EEG only": "eeg", "face only": "face"}
MILMER = [sys.executable, "-m", "flows"]


def build_store(out: Path, family: str, args: argparse.Namespace) -> str:
    deap, store = out / f"deap-{family}", out / f"store-{family}.zarr"
    if not store.exists():
        subprocess.run([*MILMER, "synth", str(deap), "--subjects", str(args.subjects), "--trials",
                        str(args.trials), "--seconds", str(args.seconds), "--fps", str(args.fps),
                        "--difficulty", args.difficulty, "--eeg-family", family, "--seed",
                        str(args.seed)], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*MILMER, "preprocess", "--deap", str(deap), "--store", str(store),
                        "--weights", "random:0", "--no-progress"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return str(store)


def train_row(store: str, run: Path, model: str, recipe: str, args: argparse.Namespace) -> dict:
    if not (run / "metrics.json").exists():
        resume = ["--resume"] if run.exists() else []  # finished folds of an interrupted run stay
        subprocess.run([*MILMER, "train", "--store", store, "--out", str(run), "--model", model, *resume,
                        "--config", recipe, "--labels", args.labels, "--folds", str(args.folds),
                        "--epochs", str(args.epochs), "--seed", str(args.seed), "--device", "cpu",
                        "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((run / "metrics.json").read_text())
    train, val, accuracy = [], [], []
    for fold in metrics["folds"]:
        history = json.loads((run / "folds" / f"fold{fold['fold']}.json").read_text())["history"]
        chosen = next(r for r in history if r["epoch"] == fold["selected_epoch"])
        train.append(chosen["train_accuracy"])
        val.append(chosen["val_accuracy"])
        accuracy.append(fold["accuracy"])
    return {"accuracy": metrics["accuracy"], "folds": accuracy, "train": float(np.mean(train)),
            "val": float(np.mean(val)), "chance": metrics["chance"]}


def probes(store: str, args: argparse.Namespace) -> dict:
    from train.data import StoreData
    from train.probe import modality_probes

    data = StoreData.open(store, labels=args.labels, needs_tokens=True)
    return modality_probes(data, data.splits("trial", folds=args.folds, seed=args.seed), seed=args.seed)


def paired(a: list[float], b: list[float]) -> str:
    diff = np.array(a) - np.array(b)
    return (f"{diff.mean():+.3f} ± {diff.std():.3f} "
            f"({int((diff > 1e-9).sum())}/{int((diff < -1e-9).sum())})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/heads-families"))
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--labels", default="deap4")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    results: dict = {"settings": {k: str(v) for k, v in vars(args).items()}, "families": {}}
    for family in FAMILIES:
        started = time.perf_counter()
        store = build_store(args.out, family, args)
        found: dict = {"probes": probes(store, args), "recipes": {}}
        for recipe_name, recipe in RECIPES.items():
            rows = found["recipes"][recipe_name] = {}
            for row, model in MODELS.items():
                # face only never reads the EEG, and the recipes differ only in the EEG tokenizer
                # (and early stopping, which keeps the epoch a full run would choose): trained once
                name = "demo" if model == "face" else recipe_name
                rows[row] = train_row(store, args.out / f"{family}-{name}-{model}", model,
                                      RECIPES[name], args)
        found["seconds"] = round(time.perf_counter() - started, 1)
        results["families"][family] = found
        report(family, found)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def report(family: str, found: dict) -> None:
    p = found["probes"]
    print(f"\n== family {family} ({found['seconds']} s); probes on the same windows and folds: "
          f"EEG band power {p['eeg']['accuracy']:.3f}, face mean token {p['face']['accuracy']:.3f}, "
          f"fused {p['fusion']['accuracy']:.3f}")
    for recipe_name, rows in found["recipes"].items():
        print(f"  recipe {recipe_name} ({RECIPES[recipe_name]}), chance {rows['fusion']['chance']:.3f}")
        for row, r in rows.items():
            folds = " / ".join(f"{a:.2f}" for a in r["folds"])
            vs = "" if row == "fusion" else f"; fusion - it {paired(rows['fusion']['folds'], r['folds'])}"
            print(f"    {row:<10} {r['accuracy']:.3f} ({folds}); train / val at the chosen epoch "
                  f"{r['train']:.2f} / {r['val']:.2f}{vs}")


if __name__ == "__main__":
    main()
