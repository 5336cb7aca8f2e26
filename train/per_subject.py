"""One model per subject (``per_subject: true``, ``milmer train --per-subject``): the paper's
subject-dependent setting.

Each usable subject gets its own run of the trainer, ``RUN_DIR/sNN/`` (config.json with
``subjects: [N]``, folds, checkpoints, metrics.json, plots, exactly as a pooled run writes them),
under the run's protocol (``trial`` or ``segment``; the folds are the pooled run's folds of that
subject, since they are drawn per subject). ``RUN_DIR`` then holds:

* ``config.json`` — the resolved config (``per_subject: true``);
* ``metrics.json`` — ``accuracy`` and ``macro_f1`` as the **mean over subjects** (the paper's
  figure) with their std over subjects, each subject's figures under ``per_subject``, the
  confusion summed over subjects, ``pooled_accuracy`` over every test window, protocol, leaky;
* ``subjects.png`` (accuracy per subject beside its chance), ``confusion.png`` (summed),
  ``curves.png`` (every subject's folds).

Resumable per subject: with ``resume``, a subject whose ``sNN/metrics.json`` holds this run's
settings is read back and not retrained; an unfinished one resumes from its checkpoints.

The trainer is passed in (``train_one``), so this module needs nothing of :mod:`train.trainer`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console

from train.config import TrainConfig, TrainError
from train.data import StoreData
from train.metrics import plot_confusion, plot_curves
from train.models import model_class


def subject_dir(out: Path, subject: int) -> Path:
    return out / f"s{subject:02d}"


def subject_config(config: TrainConfig, subject: int) -> TrainConfig:
    """The run of one subject: the same settings, that subject only."""
    return config.model_copy(update={"per_subject": False, "subjects": [subject]})


def usable_subjects(config: TrainConfig) -> tuple[list[int], list[str]]:
    """The subjects a per-subject run trains (the store's usable ones among ``config.subjects``)
    and the skipped ones with their reasons."""
    data = StoreData.open(config.store, labels=config.labels, boundaries=config.deap3,
                          subjects=config.subjects, needs_tokens=model_class(config.model.kind).uses_face,
                          keep_faceless=config.keep_faceless)
    return data.subject_numbers, list(data.skipped)


def _finished(run: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The subject's metrics if ``run`` finished with exactly ``config``."""
    try:
        old = TrainConfig.model_validate_json((run / "config.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    wanted = config.run_folds
    done = {f["fold"] for f in metrics.get("folds", [])}
    complete = done >= set(wanted if wanted is not None else range(config.folds))
    return metrics if old == config and complete else None


def run_per_subject(config: TrainConfig, out: Path, *, train_one: Callable[..., dict[str, Any]],
                    resume: bool, progress: bool | None, console: Console,
                    on_epoch_end: Callable | None = None, observe_test: bool = False) -> dict[str, Any]:
    """Train one model per subject with ``train_one`` (:func:`train.trainer.run_training`, which
    has checked ``resume`` against ``out/config.json``), write the aggregate, return it."""
    if config.protocol == "loso":  # the config refuses it too; a hand-built config is checked here
        raise TrainError("--per-subject: one model per subject cannot leave a subject out; use "
                         "--protocol trial or segment")
    subjects, skipped = usable_subjects(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.model_dump_json(indent=2) + "\n")
    per_subject: dict[int, dict[str, Any]] = {}
    for k, subject in enumerate(subjects, start=1):
        one, run = subject_config(config, subject), subject_dir(out, subject)
        done = _finished(run, one) if resume else None
        if done is None:
            console.print(f"subject s{subject:02d} ({k}/{len(subjects)}): its own model", highlight=False)
            done = train_one(one, run, resume=resume and (run / "config.json").is_file(),
                             progress=progress, console=console, on_epoch_end=on_epoch_end,
                             observe_test=observe_test)
        per_subject[subject] = done
    metrics = aggregate(config, per_subject, skipped)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    _plots(out, config, metrics, per_subject)
    console.print(f"per-subject models: accuracy {metrics['accuracy']:.3f} ± {metrics['accuracy_std']:.3f} "
                  f"over {len(subjects)} subjects (chance {metrics['chance']:.3f})"
                  f"{' (LEAKY segment split)' if metrics['leaky'] else ''}; wrote {out}/metrics.json",
                  highlight=False)
    return metrics


def aggregate(config: TrainConfig, runs: dict[int, dict[str, Any]], skipped: list[str]) -> dict[str, Any]:
    """The per-subject runs' metrics as one: mean ± std over subjects, each subject's figures."""
    if not runs:
        raise TrainError(f"{config.store}: no usable subject to train a model on")
    first = next(iter(runs.values()))
    acc = np.array([m["accuracy"] for m in runs.values()])
    f1 = np.array([m["macro_f1"] for m in runs.values()])
    chance = np.array([m["chance"] for m in runs.values()])
    n_test = np.array([m["n_test"] for m in runs.values()])
    confusion = np.sum([np.asarray(m["confusion"]) for m in runs.values()], axis=0)
    return {
        "per_subject_models": True,
        "accuracy": float(acc.mean()), "accuracy_std": float(acc.std()),
        "macro_f1": float(f1.mean()), "macro_f1_std": float(f1.std()),
        "chance": float(chance.mean()),
        "summary": ("one model per subject; accuracy and macro_f1 are the mean over subjects (std "
                    "over subjects beside them), each subject's pooled over its test folds"),
        "pooled_accuracy": float(np.trace(confusion) / max(confusion.sum(), 1)),
        "n_test": int(n_test.sum()),
        "confusion": confusion.tolist(),
        "per_subject": {f"s{s:02d}": {
            "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "chance": m["chance"],
            "n_test": m["n_test"], "selected_epochs": m["selected_epochs"],
            "stopped_epochs": (m.get("early_stopping") or {}).get("stopped_epochs"),
            "run": f"s{s:02d}"} for s, m in runs.items()},
        "protocol": config.protocol,
        "leaky": config.leaky,
        "leak_note": first.get("leak_note"),
        "labels": config.labels.value,
        "class_names": first["class_names"],
        "model": config.model.kind,
        "n_parameters": first["n_parameters"],
        "epochs": config.epochs,
        "early_stopping": {"patience": config.early_stopping,
                           "monitor": first.get("early_stopping", {}).get("monitor")},
        "validation": {k: first["validation"][k] for k in ("fraction", "selection", "eval_every", "drawn")},
        "subjects": sorted(runs),
        "skipped_subjects": skipped,
        "weights_fingerprint": first.get("weights_fingerprint"),
        "random_weights": first.get("random_weights"),
        "token_weights": first.get("token_weights"),
        "seconds": round(sum(m.get("seconds", 0.0) for m in runs.values()), 1),
        "store": config.store,
    }


def _plots(out: Path, config: TrainConfig, metrics: dict[str, Any],
           runs: dict[int, dict[str, Any]]) -> None:
    what = (f"{config.model.kind}, {config.labels.value}, {config.protocol} protocol"
            f"{' (LEAKY)' if config.leaky else ''}, one model per subject")
    plot_subjects(out / "subjects.png", metrics, title=what)
    plot_confusion(out / "confusion.png", confusion=metrics["confusion"], class_names=metrics["class_names"],
                   title=f"{what}\nsummed over subjects, mean accuracy {metrics['accuracy']:.3f}")
    histories: dict[str, list[dict[str, Any]]] = {}
    selected: dict[str, int] = {}
    for subject, m in runs.items():
        for fold in m["folds"]:
            path = subject_dir(out, subject) / "folds" / f"fold{fold['fold']}.json"
            name = f"s{subject:02d} {fold['name']}"
            histories[name] = json.loads(path.read_text())["history"]
            selected[name] = fold["selected_epoch"]
    plot_curves(out / "curves.png", histories=histories, chance=metrics["chance"], selected=selected,
                title=f"{what}: train and validation of every subject's folds")


def plot_subjects(path: Path, metrics: dict[str, Any], *, title: str) -> None:
    """Test accuracy of each subject's model beside its chance, and the mean ± std over subjects."""
    names = list(metrics["per_subject"])
    fig = Figure(figsize=(max(5, 0.45 * len(names) + 2), 3.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    ax.bar(x, [metrics["per_subject"][n]["accuracy"] for n in names], 0.6, color="tab:blue",
           label="test accuracy")
    ax.scatter(x, [metrics["per_subject"][n]["chance"] for n in names], color="grey", marker="_",
               s=200, label="chance (majority class)")
    ax.axhline(metrics["accuracy"], color="black", linewidth=1,
               label=f"mean {metrics['accuracy']:.3f} ± {metrics['accuracy_std']:.3f}")
    ax.set_xticks(x, names, rotation=90 if len(names) > 12 else 0, fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path)
