"""Metrics of a run (``metrics.json``) and its plots (``confusion.png``, ``curves.png``).

Metrics pool the test predictions of every fold run (under k-fold each segment is tested once).
``chance`` is the majority-class rate of those test labels: the accuracy of always answering the
most frequent class, the bar any model must clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, f1_score


def majority_rate(labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    return float(np.bincount(labels).max() / len(labels))


def classification_metrics(
    *, y_true: np.ndarray, y_pred: np.ndarray, subjects: np.ndarray, class_names: Sequence[str],
) -> dict[str, Any]:
    classes = list(range(len(class_names)))
    per_class = f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    per_subject = {}
    for s in np.unique(subjects):
        rows = subjects == s
        per_subject[f"s{int(s):02d}"] = {
            "accuracy": float(np.mean(y_true[rows] == y_pred[rows])), "n": int(rows.sum()),
            "chance": majority_rate(y_true[rows])}
    return {
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        "per_class_f1": {name: float(v) for name, v in zip(class_names, per_class)},
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "chance": majority_rate(y_true),
        "n_test": int(len(y_true)),
        "per_subject": per_subject,
    }


def plot_confusion(path: Path, *, confusion: list[list[int]], class_names: Sequence[str],
                   title: str) -> None:
    counts = np.asarray(confusion, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    fig = Figure(figsize=(1.4 * n + 2.2, 1.2 * n + 1.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(counts[i, j])}\n{rates[i, j]:.0%}", ha="center", va="center",
                    fontsize=9, color="white" if rates[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), class_names)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def plot_curves(path: Path, *, histories: dict[str, list[dict[str, Any]]], chance: float,
                title: str, selected: dict[str, int] | None = None) -> None:
    """Train and validation loss and accuracy per epoch: one thin line per fold, the mean over
    folds in bold, a tick at each fold's selected epoch. No test figure is drawn."""
    fig = Figure(figsize=(11, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    styles = {"train": ("tab:blue", "-"), "val": ("tab:orange", "--")}
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split, (colour, style) in styles.items():
            key = f"{split}_{metric}"
            curves = []
            for history in histories.values():
                rows = [r for r in history if r.get(key) is not None]
                if not rows:
                    continue
                ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], color=colour,
                        linestyle=style, alpha=0.25, linewidth=0.8)
                curves.append({r["epoch"]: r[key] for r in rows})
            if curves:
                epochs = sorted(set().union(*curves))
                mean = [np.mean([c[e] for c in curves if e in c]) for e in epochs]
                ax.plot(epochs, mean, color=colour, linestyle=style, linewidth=2,
                        label=f"{'validation' if split == 'val' else split} (mean of {len(curves)} fold{'s' if len(curves) > 1 else ''})")
        for name, epoch in (selected or {}).items():
            ax.axvline(epoch, color="tab:green", alpha=0.3, linewidth=0.8)
        if selected:
            ax.plot([], [], color="tab:green", alpha=0.5, label="selected epoch (per fold)")
        if metric == "accuracy":
            ax.axhline(chance, color="grey", linestyle=":", label=f"chance {chance:.2f}")
            ax.set_ylim(0, 1.02)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
