"""Named ablation studies on one store under one protocol: ``milmer ablate STUDY --store --out``.

A study is a list of rows, each a preset of :mod:`train.ablations` (or a probe). Every row is a
run of :func:`train.trainer.run_training` in ``OUT/rows/<preset>/`` with the same data, protocol,
folds, epochs and seed, so rows differ by their model only. The study is resumable: a finished
row is read back, an interrupted one resumed from its checkpoints.

``OUT/study.md`` holds, per row, accuracy and macro F1 as mean ± std over the folds (the std
over folds says how far apart two rows must be to differ), the selected epochs, the protocol
(``leaky`` rows marked) and the paper's figure where this project records one: it records none
yet (the paper's numbers are on real DEAP with fine-tuned Swin, not comparable with synthetic data
and random tokens), so that column says so instead of inventing one. ``OUT/study.png`` draws
the same figures. Rows with top-K MIL on a synthetic store also say how often the kept frames
are the ones the store planted the face cue in, beside the rate of picking at random.
``paper-table5`` also states the linear-probe ceilings of :mod:`train.probe` (EEG, face and their
fusion) and ``tokenizers`` the band-power probe's, on the same windows, protocol and folds.

Every row also stands beside the study's reference row (:data:`REFERENCE`: the Milmer row, or the
paper's tokenizer) fold by fold: rows share their folds, so the per-fold difference of
accuracies removes what makes a fold hard for every model, and its mean ± std and the number of
folds a row wins say more about two rows than the two stds over folds side by side.

With ``tracking`` (:mod:`train.tracking`) the study is one MLflow experiment and every row one run
in it, tagged ``milmer.study`` and ``milmer.preset``; rows read back are logged from their folders.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from sklearn.metrics import f1_score

from train.ablations import ABLATIONS
from train.config import TrainConfig, TrainError, deep_update, load_config_source
from train.tracking import Tracking
from train.trainer import run_training


@dataclass(frozen=True)
class StudyRow:
    preset: str
    label: str
    paper: str | None = None
    """The paper's figure for this row, as printed there (None: not recorded here)."""


STUDIES: dict[str, tuple[StudyRow, ...]] = {
    "paper-table4": (  # balancing of face tokens against EEG tokens; number of queries
        StudyRow("balance-none", "no balancing (147 tokens)"),
        StudyRow("balance-mlp", "MLP balancing"),
        StudyRow("queries-32", "cross-attention, 32 queries"),
        StudyRow("queries-64", "cross-attention, 64 queries (Milmer)"),
        StudyRow("queries-96", "cross-attention, 96 queries"),
        StudyRow("queries-196", "cross-attention, 196 queries"),
    ),
    "paper-table5": (  # modalities and fusion
        StudyRow("eeg-only", "EEG only"),
        StudyRow("face-only", "face only"),
        StudyRow("concat", "concatenation"),
        StudyRow("deepcca", "Deep CCA"),
        StudyRow("fusion", "transformer fusion (Milmer)"),
    ),
    "paper-table6": (  # how the 10 frames become face tokens
        StudyRow("mil-none", "single picture (frame 0)"),
        StudyRow("mil-all", "multiple picture (all 10 frames)"),
        StudyRow("mil-mean", "mean of the frames"),
        StudyRow("mil-amil", "AMIL weighted sum"),
        StudyRow("mil-topk", "attention top-3 (Milmer)"),
    ),
    "tokenizers": (  # EEG-only, each tokenizer
        StudyRow("eeg-raw", "raw samples (paper)"),
        StudyRow("eeg-log-power", "log power, 2 Hz bins"),
        StudyRow("eeg-de", "differential entropy, 5 bands"),
        StudyRow("eeg-band-maps", "log power, 2 Hz bins, one token per band"),
    ),
}


REFERENCE: dict[str, str] = {"paper-table4": "queries-64", "paper-table5": "fusion",
                             "paper-table6": "mil-topk", "tokenizers": "eeg-raw"}
"""The row each study's rows are compared with fold by fold (:func:`paired_differences`)."""


def paired_differences(rows: list[dict[str, Any]], reference: str) -> None:
    """Add ``vs_reference`` to every row: its per-fold accuracy minus the reference row's on the
    same store and folds (mean, std over folds, folds won, lost and tied); None for the
    reference itself or where the folds differ. With several stores (token sets), also
    ``vs_first_store``: the same row's difference from that row on the first store (the paper's
    FT axis when the stores' weights differ in it)."""
    first_store = rows[0].get("store") if rows else None
    for row in rows:
        ref = next((r for r in rows if r["preset"] == reference and r.get("store") == row.get("store")),
                   None)
        row["vs_reference"] = _fold_difference(row, ref, reference)
        same = next((r for r in rows if r["preset"] == row["preset"] and r.get("store") == first_store),
                    None)
        row["vs_first_store"] = _fold_difference(row, same, first_store)


def _fold_difference(row: dict[str, Any], ref: dict[str, Any] | None,
                     reference: str | None) -> dict[str, Any] | None:
    """``row``'s accuracy minus ``ref``'s, fold by fold; None for ``ref`` itself, none, or other folds."""
    if ref is None or ref is row or len(ref["accuracy"]) != len(row["accuracy"]):
        return None
    diff = np.asarray(row["accuracy"]) - np.asarray(ref["accuracy"])
    return {"reference": reference, "folds": diff.round(6).tolist(),
            "mean": float(diff.mean()), "std": float(diff.std()),
            "won": int((diff > 1e-9).sum()), "lost": int((diff < -1e-9).sum()),
            "tied": int((np.abs(diff) <= 1e-9).sum())}


def _row_figures(run: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Per-fold accuracy and macro F1 of a finished run, and their mean ± std; per subject
    (and their mean ± std over subjects) for a run of one model per subject."""
    if metrics.get("per_subject_models"):
        return per_subject_figures(metrics)
    accuracy, macro_f1 = [], []
    classes = list(range(len(metrics["class_names"])))
    for fold in metrics["folds"]:
        record = json.loads((run / "folds" / f"fold{fold['fold']}.json").read_text())
        y_true, y_pred = np.asarray(record["y_true"]), np.asarray(record["y_pred"])
        accuracy.append(float(np.mean(y_true == y_pred)))
        macro_f1.append(float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)))
    return {"accuracy": accuracy, "macro_f1": macro_f1,
            "accuracy_mean": float(np.mean(accuracy)), "accuracy_std": float(np.std(accuracy)),
            "macro_f1_mean": float(np.mean(macro_f1)), "macro_f1_std": float(np.std(macro_f1)),
            "selected_epochs": metrics.get("selected_epochs"), "chance": metrics["chance"],
            "protocol": metrics["protocol"], "leaky": metrics["leaky"], "model": metrics["model"],
            "mil_hit_rate": metrics.get("mil_planted_hit_rate")}


def per_subject_figures(metrics: dict[str, Any]) -> dict[str, Any]:
    """A per-subject run's figures as study rows hold them: one value per subject (each pooled
    over its test folds), mean ± std over subjects, the subjects' selected epochs in order."""
    subjects = metrics["per_subject"]
    accuracy = [v["accuracy"] for v in subjects.values()]
    macro_f1 = [v["macro_f1"] for v in subjects.values()]
    return {"accuracy": accuracy, "macro_f1": macro_f1, "subjects": list(subjects),
            "accuracy_mean": float(np.mean(accuracy)), "accuracy_std": float(np.std(accuracy)),
            "macro_f1_mean": float(np.mean(macro_f1)), "macro_f1_std": float(np.std(macro_f1)),
            "selected_epochs": [e for v in subjects.values() for e in v["selected_epochs"]],
            "chance": metrics["chance"], "protocol": metrics["protocol"], "leaky": metrics["leaky"],
            "model": metrics["model"], "mil_hit_rate": None, "per_subject_models": True}


def study_fields(config: str | None = None, **flags: Any) -> dict[str, Any]:
    """TrainConfig fields shared by every row: a JSON file's (``--config``), then the flags that
    are not ``None`` (what ``milmer ablate`` passes)."""
    return deep_update(load_config_source(config), {k: v for k, v in flags.items() if v is not None})


def run_study(name: str, out: Path | str, *, fields: dict[str, Any], stores: list[str] | None = None,
              console: Console | None = None, progress: bool | None = None,
              tracking: Tracking | None = None) -> list[dict[str, Any]]:
    """Run (or resume) study ``name`` with ``fields`` (TrainConfig fields shared by every row:
    store, protocol, epochs, folds...); write ``study.md``, ``study.png`` and ``study.json``.

    ``stores``: several stores (token sets: the same faces through different Swin weights, e.g.
    random vs fine-tuned) run every row once per store, in ``rows/<k>-<preset>/``; one store (or
    ``fields["store"]``) keeps ``rows/<preset>/``."""
    if name not in STUDIES:
        raise TrainError(f"unknown study {name!r}; studies: {', '.join(STUDIES)}, paper-protocol")
    out = Path(out)
    console = console or Console(stderr=True, soft_wrap=True)
    stores = list(stores) if stores else [fields.get("store", "")]
    rows = []
    for k, store in enumerate(stores, start=1):
        for row in STUDIES[name]:
            preset = ABLATIONS[row.preset]
            # the study's training fields (epochs, lr of its --config) win over the preset's
            data = deep_update(deep_update(preset.train, dict(fields)),
                               {"model": preset.model, "store": store})
            try:
                config = TrainConfig.model_validate(data)
            except ValueError as err:
                raise TrainError(f"study {name}, row {row.preset}: {str(err).splitlines()[0]}") from None
            run = out / "rows" / (row.preset if len(stores) == 1 else f"{k}-{row.preset}")
            metrics_path = run / "metrics.json"
            done = metrics_path.is_file() and _same_run(run, config)
            tracked = (nullcontext() if tracking is None else tracking.run(
                config, run, run_name=run.name, tags={"milmer.study": name, "milmer.preset": row.preset,
                                                      "milmer.row": row.label}))
            with tracked as mlflow_run:
                if not done:
                    console.print(f"study {name}: {row.preset} ({row.label})"
                                  + (f", store {k}/{len(stores)} {store}" if len(stores) > 1 else ""),
                                  highlight=False)
                    run_training(config, run, resume=(run / "config.json").is_file(), progress=progress,
                                 console=console,
                                 on_epoch_end=None if mlflow_run is None else mlflow_run.log_epoch)
                if mlflow_run is not None:
                    mlflow_run.finish()
            metrics = json.loads(metrics_path.read_text())
            rows.append({"preset": row.preset, "label": row.label, "paper": row.paper,
                         "store": store, "tokens": token_set_label(metrics), "ft": face_tuned(metrics),
                         **_row_figures(run, metrics)})
    paired_differences(rows, REFERENCE[name])
    probes = [study_probes(name, fields, store) for store in stores] if name in PROBED else []
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps({"study": name, "stores": stores, "rows": rows,
                                                "probes": probes}, indent=1) + "\n")
    (out / "study.md").write_text(study_markdown(name, rows, {**fields, "store": ", ".join(stores)},
                                                 probes=probes))
    plot_study(out / "study.png", name, rows, probes=probes)
    return rows


PROBED = ("paper-table5", "tokenizers")
"""Studies whose ``study.md`` states linear-probe ceilings on the same windows and folds."""


def study_probes(name: str, fields: dict[str, Any], store: str) -> dict[str, Any]:
    """The yardsticks of :mod:`train.probe` for study ``name`` on ``store``, with the rows' data,
    protocol, folds and seed: EEG, face and fused probes for ``paper-table5`` (validation trials
    drawn as the trainer draws them), the band-power probe for ``tokenizers``."""
    from train.data import StoreData
    from train.probe import band_power_probe, modality_probes
    from train.splits import manifest_subjects, plan_folds

    config = TrainConfig.model_validate(deep_update(dict(fields), {"store": store}))
    with_faces = name == "paper-table5"
    data = StoreData.open(config.store, labels=config.labels, boundaries=config.deap3,
                          subjects=config.subjects if config.subjects is not None
                          else manifest_subjects(config.splits), needs_tokens=with_faces,
                          keep_faceless=config.keep_faceless)
    splits = plan_folds(data, config)  # the rows' folds (a manifest's with --splits)
    if config.run_folds is not None:
        splits = [s for s in splits if s.fold in set(config.run_folds)]
    if with_faces:
        found = modality_probes(data, splits, validation_fraction=config.validation_fraction,
                                seed=config.seed)
        return {"store": store, "model": found["model"], "choices": found["choices"],
                **{k: found[k] for k in ("eeg", "face", "fusion")}}
    found = band_power_probe(data, splits, seed=config.seed)
    return {"store": store, "model": found["model"],
            "eeg": {k: found[k] for k in ("accuracy", "folds", "mean", "std")}}


def _probe_lines(probes: list[dict[str, Any]]) -> list[str]:
    if not probes:
        return []
    names = {"eeg": "EEG: log band power", "face": "face: mean token",
             "fusion": "fusion of the two probes"}
    lines = ["", "Probe ceilings on the same windows and folds (" + probes[0]["model"] + "):", "",
             "| store | probe | accuracy | per fold |", "| --- | --- | --- | --- |"]
    for p in probes:
        for key, label in names.items():
            if key in p:
                lines.append(f"| `{p['store']}` | {label} | {p[key]['mean']:.3f} ± {p[key]['std']:.3f} | "
                             f"{' / '.join(f'{a:.3f}' for a in p[key]['folds'])} |")
    return lines


ORIGIN_LABELS = {"random": "random", "imagenet": "ImageNet", "face-emotion": "face-emotion",
                 "finetune": "milmer finetune", "checkpoint": "checkpoint",
                 "loop": "Swin fine-tuned in the loop"}
"""How ``study.md`` names the starting point the tokens' weights are (the pipeline's record)."""


NO_TOKENS = "no tokens (EEG only)"


def token_set_label(metrics: dict[str, Any]) -> str:
    """The row's token weights as a reader says them: ``random:0``, or a fingerprint's start,
    after the starting point they are where the tokens record says (``ImageNet (sha256:...)``,
    ``milmer finetune of imagenet (sha256:...)``)."""
    fp = metrics.get("weights_fingerprint")
    if not fp:
        return NO_TOKENS
    short = fp if str(fp).startswith("random:") else f"{str(fp)[:19]}..."
    provenance = metrics.get("token_weights") or {}
    origin = provenance.get("origin")
    if origin is None:
        return short
    named = ORIGIN_LABELS.get(origin, origin)
    base = ((provenance.get("model_card") or {}).get("base_weights") or {}).get("spec")
    joint = {"finetune": " of ", "loop": " from "}.get(origin)
    return f"{named}{f'{joint}{base}' if joint and base else ''} ({short})"


def face_tuned(metrics: dict[str, Any]) -> bool | None:
    """Whether the tokens' weights were tuned on face expressions (Table 6's FT): from the
    tokens record; random weights are not; None where it is not recorded (or EEG only)."""
    provenance = metrics.get("token_weights") or {}
    if "face_tuned" in provenance:
        return provenance["face_tuned"]
    return False if metrics.get("random_weights") else None


def _same_run(run: Path, config: TrainConfig) -> bool:
    """A finished row counts only if it ran these settings with every fold asked for."""
    try:
        old = TrainConfig.model_validate_json((run / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return old == config


def study_markdown(name: str, rows: list[dict[str, Any]], fields: dict[str, Any], *,
                   probes: list[dict[str, Any]] | None = None) -> str:
    protocol = rows[0]["protocol"] if rows else fields.get("protocol", "trial")
    several = len({r.get("store") for r in rows}) > 1
    lines = [
        f"# Study `{name}`",
        "",
        f"Store `{fields.get('store', '')}`, protocol `{protocol}`"
        f"{' (LEAKY: windows of one trial on both sides)' if rows and rows[0]['leaky'] else ''}, "
        f"{fields.get('epochs', 100)} epochs, {len(rows[0]['accuracy']) if rows else 0} "
        f"{'subject(s)' if fields.get('per_subject') else 'fold(s)'}, "
        f"seed {fields.get('seed', 0)}; "
        + ("one model per subject, mean ± std over subjects (paired by subject)"
           if fields.get("per_subject") else "mean ± std over folds")
        + "; epoch chosen on validation.",
        "",
        "| row | preset | token weights | FT | protocol | accuracy | macro F1 | chance "
        f"| accuracy − `{REFERENCE.get(name, '?')}`, paired by fold (won/lost/tied) "
        + ("| accuracy − the same row on the first store, paired by fold " if several else "")
        + "| selected epochs | top-K picks on planted frames | paper |",
        "| --- " * (13 if several else 12) + "|",
    ]
    for r in rows:
        proto = r["protocol"] + (" (leaky)" if r["leaky"] else "")
        lines.append(
            f"| {r['label']} | `{r['preset']}` | {r.get('tokens', '?')} | {'—' if r.get('tokens') == NO_TOKENS else FT_MARK[r.get('ft')]} | "
            f"{proto} | {r['accuracy_mean']:.3f} ± "
            f"{r['accuracy_std']:.3f} | {r['macro_f1_mean']:.3f} ± {r['macro_f1_std']:.3f} | "
            f"{r['chance']:.3f} | {_paired(r.get('vs_reference'))} | "
            + (f"{_paired(r.get('vs_first_store'))} | " if several else "") +
            f"{', '.join(map(str, r['selected_epochs'] or []))} | "
            f"{_hits(r['mil_hit_rate'])} | {r['paper'] or 'not recorded (real DEAP, fine-tuned Swin)'} |")
    lines += _probe_lines(probes or [])
    return "\n".join(lines) + "\n"


FT_MARK = {True: "✓", False: "✗", None: "?"}
"""Table 6's FT axis: the token weights were (✓) or were not (✗) tuned on face expressions."""


def _paired(diff: dict[str, Any] | None) -> str:
    if not diff:
        return "—"
    return (f"{diff['mean']:+.3f} ± {diff['std']:.3f} "
            f"({diff['won']}/{diff['lost']}/{diff['tied']})")


def _hits(rate: dict[str, Any] | None) -> str:
    if not rate:
        return "—"
    return f"{rate['rate']:.2f} (random {rate['random_rate']:.2f})"


def plot_study(path: Path, name: str, rows: list[dict[str, Any]], *,
               probes: list[dict[str, Any]] | None = None) -> None:
    fig = Figure(figsize=(max(6, 1.3 * len(rows) + 2), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    for offset, key, colour in ((-0.18, "accuracy", "tab:blue"), (0.18, "macro_f1", "tab:orange")):
        ax.bar(x + offset, [r[f"{key}_mean"] for r in rows], 0.36, yerr=[r[f"{key}_std"] for r in rows],
               color=colour, capsize=3, label=key.replace("_", " ") + " (mean ± std over folds)")
    if rows:
        ax.axhline(rows[0]["chance"], color="grey", linestyle=":", label=f"chance {rows[0]['chance']:.2f}")
    styles = {"eeg": ("tab:green", "EEG"), "face": ("tab:purple", "face"), "fusion": ("black", "fused")}
    for probe in (probes or [])[:1]:  # one store's ceilings; several stores: see study.md
        for key, (colour, what) in styles.items():
            if key in probe:
                ax.axhline(probe[key]["mean"], color=colour, linestyle="--", linewidth=1,
                           label=f"{what} probe {probe[key]['mean']:.2f}")
    several = len({r.get("store") for r in rows}) > 1
    ax.set_xticks(x, [r["preset"] + (f"\n{r.get('tokens')}" if several else "")
                      + (" (leaky)" if r["leaky"] else "") for r in rows], rotation=20,
                  ha="right", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{name}: protocol {rows[0]['protocol'] if rows else '?'}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path)
