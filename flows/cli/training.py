"""``milmer train`` and ``milmer ablate``: the heads trained on a store's tokens, one run or a
named study of runs. The options both take are defined once, in :mod:`flows.cli.options`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

import flows.cli.render as render
from flows.cli.errors import fail
from flows.cli.options import (
    STORE_HELP,
    EarlyStopping,
    Epochs,
    Folds,
    Labels,
    PerSubject,
    Protocol,
    Seed,
    TrainDevice,
    TrainSubjects,
    parse_ints,
)

app = typer.Typer()


@app.command()
def train(
    store: Annotated[str, typer.Option(help=STORE_HELP)],
    out: Annotated[Path, typer.Option(help="Run folder: config.json, checkpoints/, metrics.json, plots.")],
    config: Annotated[Optional[str], typer.Option(
        help="JSON file of TrainConfig fields, or a preset name from train.ablations "
             "(e.g. balance-mlp, mil-amil, eeg-only); flags win.")] = None,
    labels: Labels = None,
    protocol: Protocol = None,
    epochs: Epochs = None,
    model: Annotated[Optional[str], typer.Option(
        help="fusion (default), concat, deepcca, eeg or face.")] = None,
    eeg_tokenizer: Annotated[Optional[str], typer.Option(
        help="raw (the paper's, default), log_power (2 Hz bins, one token per channel), de "
             "(differential entropy in 5 bands) or band_maps (2 Hz bins, one token per band): "
             "spectral ones see random-phase band power.")] = None,
    folds: Folds = None,
    device: TrainDevice = None,
    seed: Seed = None,
    subjects: TrainSubjects = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size (default 14).")] = None,
    per_subject: PerSubject = None,
    early_stopping: EarlyStopping = None,
    resume: Annotated[bool, typer.Option(
        help="Continue the run in --out from its checkpoints (settings from its config.json).")] = False,
    progress: Annotated[Optional[bool], typer.Option(
        help="Show a progress bar (default: when the terminal is interactive).")] = None,
) -> None:
    """Train the Milmer heads on cached tokens and evaluate them fold by fold.

    Writes config.json, metrics.json, confusion.png, curves.png and checkpoints to --out.
    """
    from store_schema.errors import MilmerError
    from train.config import resolve_config
    from train.trainer import run_training

    source = config
    if resume and source is None and (out / "config.json").is_file():
        source = str(out / "config.json")
    subject_list = parse_ints(subjects, "subjects")
    try:
        cfg = resolve_config(
            source, store=store, labels=labels, protocol=protocol, epochs=epochs, folds=folds,
            device=device, seed=seed, subjects=subject_list, batch_size=batch_size,
            per_subject=per_subject, early_stopping=early_stopping,
            model={k: v for k, v in (("kind", model), ("eeg_tokenizer", eeg_tokenizer)) if v}
            or None)
        run_training(cfg, out, resume=resume, progress=progress, console=render.err_console)
    except MilmerError as err:
        raise fail(str(err)) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted; continue with `milmer train --store {store} --out {out} --resume`",
                   code=130) from None


@app.command()
def ablate(
    study: Annotated[str, typer.Argument(help=(
        "paper-table4, paper-table5, paper-table6, tokenizers, or paper-protocol (the paper's "
        "protocol, LEAKY: per-subject models, random window split, best test epoch; beside ours: "
        "whole trials held out, epoch chosen on validation; and the difference)."))],
    store: Annotated[list[str], typer.Option(help=(
        f"{STORE_HELP} Repeat to compare token sets (the same data through "
        "different Swin weights): every row runs once per store."))],
    out: Annotated[Path, typer.Option(help="Study folder: study.md, study.png, study.json, rows/.")],
    config: Annotated[Optional[str], typer.Option(
        help="JSON file of TrainConfig fields shared by every row; flags win.")] = None,
    labels: Labels = None,
    protocol: Protocol = None,
    epochs: Epochs = None,
    folds: Folds = None,
    device: TrainDevice = None,
    seed: Seed = None,
    subjects: TrainSubjects = None,
    per_subject: PerSubject = None,
    early_stopping: EarlyStopping = None,
    progress: Annotated[Optional[bool], typer.Option(help="Show progress bars.")] = None,
) -> None:
    """Run a named ablation study on one store under one protocol (resumable: finished rows are
    read back) and write study.md + study.png: each row's accuracy and macro F1, mean ± std over
    folds, with its protocol (leaky rows marked). paper-protocol compares protocols instead, on
    one model (--config)."""
    from store_schema.errors import MilmerError
    from train.protocols import PAPER_PROTOCOL, run_paper_protocol
    from train.study import run_study, study_fields

    try:
        fields = study_fields(config, store=store[0], labels=labels, protocol=protocol, epochs=epochs,
                              folds=folds, device=device, seed=seed,
                              subjects=parse_ints(subjects, "subjects"), per_subject=per_subject,
                              early_stopping=early_stopping)
        if study == PAPER_PROTOCOL:
            if len(store) > 1:
                raise fail(f"{PAPER_PROTOCOL} runs on one store; give one --store")
            found = run_paper_protocol(out, fields=fields, console=render.err_console,
                                       progress=bool(progress))
        else:
            rows = run_study(study, out, fields=fields, stores=store, console=render.err_console,
                             progress=bool(progress))
    except MilmerError as err:
        raise fail(str(err)) from None
    if study == PAPER_PROTOCOL:
        render.print_protocol_rows(found)
        render.console.print(f"{out / 'study.md'}\n{out / 'study.png'}", highlight=False)
        return
    render.print_study_rows(rows, several_stores=len(store) > 1)
    render.console.print(f"{out / 'study.md'}\n{out / 'study.png'}", highlight=False)
