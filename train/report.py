"""A finished run's ``metrics.json`` as text a person reads: the markdown and the per-fold table the
``train-heads`` flow publishes as Prefect artifacts. Every figure states its protocol (a leaky
segment split marked), data, token weights and machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def fold_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per fold: sizes, test accuracy, chance, the epoch chosen on validation."""
    return [{"fold": f["name"], "n_train": f["n_train"], "n_test": f["n_test"],
             "test_accuracy": None if f["accuracy"] is None else round(f["accuracy"], 4),
             "chance": round(f["chance"], 4), "selected_epoch": f["selected_epoch"],
             "validation_accuracy": (None if f["validation"]["accuracy"] is None
                                     else round(f["validation"]["accuracy"], 4)),
             "seconds": f["seconds"]}
            for f in metrics["folds"]]


def run_markdown(metrics: dict[str, Any], out: Path | str, *, machine: str) -> str:
    """The run's headline, per-subject accuracies and links to its plots and files."""
    out = Path(out).resolve()
    protocol = metrics["protocol"] + (" (LEAKY: windows of one trial on both sides)" if metrics["leaky"]
                                      else "")
    weights = metrics.get("weights_fingerprint") or "none (EEG only)"
    if metrics.get("random_weights"):
        weights += " (random Swin weights: face results say nothing about real faces)"
    lines = [
        f"# `{metrics['model']}` on `{metrics['store']}`",
        "",
        f"**accuracy {metrics['accuracy']:.3f}**, macro F1 {metrics['macro_f1']:.3f}, chance "
        f"{metrics['chance']:.3f} (n = {metrics['n_test']} test segments, pooled over "
        f"{len(metrics['folds'])} fold(s)); epoch chosen on validation, the test fold evaluated once.",
        "",
        f"- protocol: {protocol}",
        f"- labels: {metrics['labels']} ({', '.join(metrics['class_names'])})",
        f"- data: subjects {', '.join(f's{s:02d}' for s in metrics['subjects'])}, "
        f"{metrics['n_segments']} segments, {metrics['epochs']} epochs",
        f"- token weights: {weights}",
        f"- machine: {machine}; {metrics['seconds']} s",
        "",
        "| subject | accuracy | chance | n |",
        "| --- | --- | --- | --- |",
        *(f"| {s} | {v['accuracy']:.3f} | {v['chance']:.3f} | {v['n']} |"
          for s, v in metrics["per_subject"].items()),
        "",
        "Files: " + ", ".join(f"[{name}]({(out / name).as_uri()})"
                              for name in ("confusion.png", "curves.png", "metrics.json", "config.json",
                                           "splits.json")
                              if (out / name).is_file()),
    ]
    return "\n".join(lines) + "\n"
