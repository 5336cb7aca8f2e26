"""``milmer ablate paper-protocol``: the paper's evaluation protocol beside ours, on one store and
one model configuration, and how much the published protocol inflates accuracy.

Rows (:data:`PAPER_PROTOCOL_ROWS`), each a run of one model per subject
(:mod:`train.per_subject`) in ``OUT/rows/<key>/``, with the same store, model, labels, epochs,
folds and seed, so they differ by the protocol only:

* ``paper`` — the paper's code: that subject's windows split at random into k folds (``segment``,
  so each fold is a random (k-1)/k : 1/k split, 80/20 at k = 5; the paper draws one such split,
  this study averages over all k unless ``run_folds`` says otherwise), no validation, the test
  fold scored after every epoch and the **maximum over epochs** reported (``selection:
  test-max``, ``leaky: true``). The same run's last-epoch test accuracy is reported beside it
  (also leaky: the split is), so the optimism splits into its two causes.
* ``ours`` — whole trials held out (``trial``), the epoch chosen on validation trials carved out
  of each training fold, the test fold evaluated once (``selection: validation``,
  ``leaky: false``).

``OUT/study.md`` names ``paper`` minus ``ours`` the "optimism of the published protocol", per
subject and overall (mean over subjects, as the paper averages), split into what choosing the
epoch on the test set adds (test-max minus last epoch, same split) and the rest (mostly windows
of one trial on both sides of the split). ``study.json`` rows carry ``protocol``,
``selection``, ``leaky`` and the accuracy; ``study.png`` draws the rows per subject.

Choosing the epoch by the test set exists only here: the trainer records the test curve when
this study asks (``observe_test``) and chooses nothing by it; the maximum is taken below, and
every figure it gives is printed with its LEAKY label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console

from train.config import TrainConfig, TrainError, deep_update
from train.trainer import run_training

PAPER_PROTOCOL = "paper-protocol"


@dataclass(frozen=True)
class ProtocolRow:
    """One row of the study: the TrainConfig fields it sets over the study's, and how its figure
    is read from its runs."""

    key: str
    label: str
    fields: dict[str, Any]
    selection: str
    """``test-max`` (the paper's: the best test epoch; leaky) or ``validation``."""
    split: str
    """The split in words, for the table."""
    observe_test: bool = False
    """The trainer scores the test fold every epoch (what ``test-max`` reads)."""
    needs_gpu: bool = False
    """Run only where CUDA is available (the row is listed as not run otherwise)."""


PAPER_PROTOCOL_ROWS: tuple[ProtocolRow, ...] = (
    ProtocolRow("paper", "the paper's protocol",
                {"protocol": "segment", "per_subject": True, "validation_fraction": 0.0,
                 "early_stopping": None},
                selection="test-max", split="random split of each subject's windows",
                observe_test=True),
    ProtocolRow("ours", "ours (honest)", {"protocol": "trial", "per_subject": True},
                selection="validation", split="whole trials of each subject held out"),
    # The paper's backbone setting too: Swin trained in the loop (face_norm none: cached-token
    # statistics mean nothing when the tokens change every step). Hours a subject on a CPU.
    ProtocolRow("paper-finetuned", "the paper's protocol, Swin trained in the loop",
                {"protocol": "segment", "per_subject": True, "validation_fraction": 0.0,
                 "early_stopping": None, "finetune_backbone": True, "model": {"face_norm": "none"}},
                selection="test-max", split="random split of each subject's windows",
                observe_test=True, needs_gpu=True),
)


def row_leaky(row: ProtocolRow, config: TrainConfig) -> bool:
    return row.selection == "test-max" or config.leaky


def row_config(row: ProtocolRow, fields: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.model_validate(deep_update(dict(fields), row.fields))
    except ValueError as err:
        raise TrainError(f"study {PAPER_PROTOCOL}, row {row.key}: {str(err).splitlines()[0]}") from None


def _finished(run: Path, config: TrainConfig) -> bool:
    try:
        return (TrainConfig.model_validate_json((run / "config.json").read_text()) == config
                and (run / "metrics.json").is_file())
    except (OSError, ValueError):
        return False


def run_paper_protocol(out: Path | str, *, fields: dict[str, Any], console: Console | None = None,
                       progress: bool = False, backbone_loader: Any = None) -> dict[str, Any]:
    """Run (or resume: finished subjects are read back) every row; write ``study.json``,
    ``study.md`` and ``study.png``; return the study (rows and optimism). The rows that need a
    GPU run only where CUDA is present (listed as not run elsewhere); ``backbone_loader``: where
    the Swin-in-the-loop row gets its starting weights (:mod:`train.backbone_loop`)."""
    out = Path(out)
    console = console or Console(stderr=True, soft_wrap=True)
    import torch

    rows, not_run = [], []
    for row in PAPER_PROTOCOL_ROWS:
        if row.needs_gpu and not torch.cuda.is_available():
            not_run.append({"key": row.key, "label": row.label, "why": "needs a CUDA GPU"})
            continue
        if row.fields.get("finetune_backbone") and backbone_loader is None:
            not_run.append({"key": row.key, "label": row.label, "why": "no backbone loader given"})
            continue
        config = row_config(row, fields)
        run = out / "rows" / row.key
        if not _finished(run, config):
            console.print(f"study {PAPER_PROTOCOL}: {row.key} ({row.label})", highlight=False)
            run_training(config, run, resume=(run / "config.json").is_file(), progress=progress,
                         console=console, observe_test=row.observe_test,
                         backbone_loader=backbone_loader if config.finetune_backbone else None)
        rows.append(read_row(row, config, run))
    study = {"study": PAPER_PROTOCOL, "store": fields.get("store", ""), "rows": rows,
             "not_run": not_run, "optimism": optimism(rows)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(study, indent=1) + "\n")
    (out / "study.md").write_text(protocol_markdown(study, fields))
    plot_protocols(out / "study.png", study)
    return study


def max_test_accuracy_leaky(history: list[dict[str, Any]], where: Path) -> float:
    """The paper's figure of one fold: its best test accuracy over epochs (LEAKY: the test set
    chose the epoch). Only this study calls it."""
    seen = [r.get("test_accuracy") for r in history]
    if not seen or any(a is None for a in seen):
        raise TrainError(f"{where}: an epoch without its test score (the run was not made by "
                         f"`milmer ablate {PAPER_PROTOCOL}`); delete the row's folder and run again")
    return float(max(seen))


def read_row(row: ProtocolRow, config: TrainConfig, run: Path) -> dict[str, Any]:
    """A finished row's figures, per subject and as the mean ± std over subjects."""
    metrics = json.loads((run / "metrics.json").read_text())
    per_subject: dict[str, dict[str, Any]] = {}
    for name, subject in metrics["per_subject"].items():
        figures = {"accuracy": subject["accuracy"], "chance": subject["chance"],
                   "n_test": subject["n_test"]}
        if row.selection == "test-max":
            sub = json.loads((run / name / "metrics.json").read_text())
            best, n = [], []
            for fold in sub["folds"]:
                path = run / name / "folds" / f"fold{fold['fold']}.json"
                best.append(max_test_accuracy_leaky(json.loads(path.read_text())["history"], path))
                n.append(fold["n_test"])
            figures = {**figures, "last_epoch_accuracy": subject["accuracy"],
                       "accuracy": float(np.average(best, weights=n))}
        per_subject[name] = figures
    accuracy = np.array([v["accuracy"] for v in per_subject.values()])
    found = {
        "key": row.key, "label": row.label, "protocol": config.protocol, "selection": row.selection,
        "leaky": row_leaky(row, config), "split": row.split, "per_subject_models": True,
        "accuracy": float(accuracy.mean()), "accuracy_std": float(accuracy.std()),
        "chance": metrics["chance"], "per_subject": per_subject, "model": metrics["model"],
        "labels": metrics["labels"], "epochs": config.epochs, "folds": config.folds,
        "run_folds": config.run_folds, "validation_fraction": config.validation_fraction,
        "early_stopping": config.early_stopping, "selected_epochs": {
            n: s["selected_epochs"] for n, s in metrics["per_subject"].items()},
        "seconds": metrics.get("seconds")}
    if row.selection == "test-max":
        last = np.array([v["last_epoch_accuracy"] for v in per_subject.values()])
        found["last_epoch_accuracy"] = float(last.mean())
        found["last_epoch_accuracy_std"] = float(last.std())
    return found


def optimism(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``paper`` minus ``ours``, per subject and as the mean over subjects, split into what the
    test-chosen epoch adds (``paper``'s best test epoch minus its last one) and the rest."""
    leaky = next((r for r in rows if r["key"] == "paper"), None)
    honest = next((r for r in rows if r["key"] == "ours"), None)
    if leaky is None or honest is None:
        return None
    per_subject = {}
    for name in leaky["per_subject"]:
        if name not in honest["per_subject"]:
            continue
        p, h = leaky["per_subject"][name], honest["per_subject"][name]
        per_subject[name] = {"total": p["accuracy"] - h["accuracy"],
                             "test_chose_epoch": p["accuracy"] - p["last_epoch_accuracy"],
                             "split_and_rest": p["last_epoch_accuracy"] - h["accuracy"]}
    if not per_subject:
        return None
    mean = {k: float(np.mean([v[k] for v in per_subject.values()])) for k in
            ("total", "test_chose_epoch", "split_and_rest")}
    std = float(np.std([v["total"] for v in per_subject.values()]))
    return {"overall": {**mean, "total_std": std}, "per_subject": per_subject,
            "what": "accuracy of the paper's protocol (LEAKY) minus ours, mean over subjects"}


WHY = (
    "Why the published protocol is optimistic, in plain words: (1) its random split puts windows "
    "of the same trial — 3 s apart, recorded in one sitting, with the same electrode contact, "
    "mood and video — in training and in test, so a model can score on a test window by "
    "recognising its trial (something that holds within a recording, not the emotion) instead "
    "of generalising to a trial it has never seen; (2) it reports the best test accuracy over "
    "all epochs, so the test set chose the epoch: the maximum of many noisy scores is above "
    "their typical value even for a model that learnt nothing. Ours holds whole trials out and "
    "chooses the epoch on validation trials carved out of the training fold, so the test fold "
    "is touched once."
)


def protocol_markdown(study: dict[str, Any], fields: dict[str, Any]) -> str:
    rows, gap = study["rows"], study["optimism"]
    first = rows[0] if rows else {}
    model = fields.get("model", {}).get("kind", first.get("model", "fusion"))
    lines = [
        f"# Study `{PAPER_PROTOCOL}`: the paper's protocol beside ours", "",
        f"Store `{study['store']}`, model `{model}`, labels `{first.get('labels', '?')}`, "
        f"{first.get('epochs', '?')} epochs, k = {first.get('folds', '?')} folds per subject"
        f"{_folds_run(first.get('run_folds'))}, "
        f"seed {fields.get('seed', 0)}. Both rows train one model per subject with the same "
        "model and settings; they differ by the protocol only. Accuracy: mean ± std over "
        "subjects, each subject's pooled over its test folds.", "",
        "| row | protocol | split | epoch chosen by | leaky | accuracy | chance |",
        "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        chooser = ("the test set (best test epoch of every fold)" if r["selection"] == "test-max"
                   else "validation trials; test fold touched once"
                   + (f" (early stopping, patience {r['early_stopping']})" if r["early_stopping"] else ""))
        lines.append(f"| {r['label']} | {r['protocol']}, per subject | {r['split']} | {chooser} | "
                     f"{'**LEAKY**' if r['leaky'] else 'no'} | {r['accuracy']:.3f} ± "
                     f"{r['accuracy_std']:.3f}{' (LEAKY)' if r['leaky'] else ''} | {r['chance']:.3f} |")
        if "last_epoch_accuracy" in r:
            lines.append(f"| {r['label']}, last epoch instead of the best | {r['protocol']}, per subject "
                         f"| {r['split']} | the last epoch | **LEAKY** (split) | "
                         f"{r['last_epoch_accuracy']:.3f} ± {r['last_epoch_accuracy_std']:.3f} (LEAKY) "
                         f"| {r['chance']:.3f} |")
    for r in study.get("not_run", []):
        lines.append(f"| {r['label']} | not run: {r['why']} | | | | | |")
    if gap:
        o = gap["overall"]
        lines += [
            "", f"**Optimism of the published protocol: {o['total']:+.3f}** (± {o['total_std']:.3f} "
            "over subjects): the paper's protocol (LEAKY) minus ours, mean over subjects. Of it:", "",
            f"- {o['test_chose_epoch']:+.3f} because the test set chose the epoch (best test epoch "
            "minus last epoch, same split; both LEAKY);",
            f"- {o['split_and_rest']:+.3f} from the split and the rest (last epoch on the random "
            "window split, LEAKY, minus ours): windows of one trial on both sides, and that the "
            "paper's row trains on the whole training fold without carving validation out.", "",
            "Per subject (accuracy; the first two columns are LEAKY figures):", "",
            "| subject | paper's protocol (LEAKY: segment, test-max) | paper's split, last epoch "
            "(LEAKY: segment) | ours (trial, validation) | optimism | of it: test chose the epoch "
            "| of it: split and rest |", "| --- " * 7 + "|"]
        leaky = next(r for r in rows if r["key"] == "paper")
        honest = next(r for r in rows if r["key"] == "ours")
        for name, d in gap["per_subject"].items():
            p, h = leaky["per_subject"][name], honest["per_subject"][name]
            lines.append(f"| {name} | {p['accuracy']:.3f} (LEAKY) | {p['last_epoch_accuracy']:.3f} (LEAKY) | "
                         f"{h['accuracy']:.3f} | {d['total']:+.3f} | {d['test_chose_epoch']:+.3f} | "
                         f"{d['split_and_rest']:+.3f} |")
    lines += ["", WHY]
    return "\n".join(lines) + "\n"


def _folds_run(run_folds: list[int] | None) -> str:
    return "" if run_folds is None else f" (folds run: {', '.join(map(str, run_folds))})"


def plot_protocols(path: Path, study: dict[str, Any]) -> None:
    rows = study["rows"]
    names = sorted({n for r in rows for n in r["per_subject"]})
    fig = Figure(figsize=(max(6, 0.6 * len(names) * len(rows) + 2), 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(len(names) + 1)
    width = 0.8 / max(len(rows), 1)
    for i, r in enumerate(rows):
        values = [r["per_subject"].get(n, {}).get("accuracy", np.nan) for n in names] + [r["accuracy"]]
        tag = f"{r['protocol']}, {r['selection']}" + (", LEAKY" if r["leaky"] else "")
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, values, width, label=f"{r['label']} ({tag})",
               color="tab:red" if r["leaky"] else "tab:blue", alpha=0.5 + 0.5 * (i == 0))
    if rows:
        ax.axhline(rows[0]["chance"], color="grey", linestyle=":", label=f"chance {rows[0]['chance']:.2f}")
    ax.set_xticks(x, [*names, "mean"], fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("test accuracy")
    gap = study["optimism"]
    ax.set_title(f"{PAPER_PROTOCOL}: one model per subject"
                 + (f"\noptimism of the published protocol {gap['overall']['total']:+.3f}" if gap else ""),
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path)
