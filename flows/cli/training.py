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
    Splits,
    TrainDevice,
    Track,
    TrackingUri,
    TrainSubjects,
    ProgressFlag,
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
    progress: ProgressFlag = None,
    splits: Splits = None,
    finetune_backbone: Annotated[Optional[bool], typer.Option(
        "--finetune-backbone", help=(
            "Train Swin-tiny in the loop with the heads (the paper's code): the face path reads "
            "the stored 224x224 crops, not the cached tokens; each fold's tuned backbone (its "
            "selected epoch) goes to --out/backbone/fold<F>/, a --weights folder. Slow on a CPU."))] = None,
    weights: Annotated[Optional[str], typer.Option(help=(
        "--finetune-backbone: starting weights (random:SEED, a path, hf-hub:ORG/NAME or ORG/NAME@REV, "
        "imagenet, face-emotion); default: the weights the store's tokens were made from."))] = None,
    backbone_lr: Annotated[Optional[float], typer.Option(help=(
        "--finetune-backbone: learning rate of the backbone (default: --config's lr, the "
        "paper's one AdamW at 1e-4)."))] = None,
    freeze_stages: Annotated[Optional[int], typer.Option(help=(
        "--finetune-backbone: freeze the patch embedding and the first N Swin stages (0-4; "
        "4 = the whole backbone). Default 0 (the paper)."))] = None,
    grad_checkpointing: Annotated[Optional[bool], typer.Option(
        "--grad-checkpointing", help=(
            "--finetune-backbone: recompute the backbone's activations in the backward pass "
            "(less memory, ~30 % more compute)."))] = None,
    micro_batch: Annotated[Optional[int], typer.Option(help=(
        "--finetune-backbone: segments per forward/backward pass, gradients accumulated over "
        "the batch (default: the batch on CUDA, 2 on a CPU)."))] = None,
    tracking_uri: TrackingUri = None,
    track: Track = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment of the run.")] = "milmer-train",
) -> None:
    """Train the Milmer heads on cached tokens (or, with --finetune-backbone, with Swin-tiny
    trained in the loop from the stored crops) and evaluate them fold by fold.

    Writes config.json, splits.json, metrics.json, confusion.png, curves.png and checkpoints to
    --out.
    """
    from store_schema.errors import MilmerError
    from train.config import resolve_config
    from train.tracking import tracking_for, train_tracked

    source = config
    if resume and source is None and (out / "config.json").is_file():
        source = str(out / "config.json")
    subject_list = parse_ints(subjects, "subjects")
    try:
        protocol, folds = manifest_defaults(splits, protocol, folds)
        cfg = resolve_config(
            source, store=store, labels=labels, protocol=protocol, epochs=epochs, folds=folds,
            device=device, seed=seed, subjects=subject_list, batch_size=batch_size,
            splits=str(Path(splits).resolve()) if splits else None,
            per_subject=per_subject, early_stopping=early_stopping,
            model={k: v for k, v in (("kind", model), ("eeg_tokenizer", eeg_tokenizer)) if v}
            or None, finetune_backbone=finetune_backbone, backbone_weights=weights,
            backbone_lr=backbone_lr, freeze_stages=freeze_stages,
            grad_checkpointing=grad_checkpointing, micro_batch=micro_batch)
        loader = None
        if cfg.finetune_backbone:
            from pipeline.weights.loop import load_loop_backbone as loader
        tracking = tracking_for(out, uri=tracking_uri, track=track, experiment=experiment)
        train_tracked(cfg, out, tracking, resume=resume, progress=progress, console=render.err_console,
                      backbone_loader=loader)
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
    progress: ProgressFlag = None,
    splits: Splits = None,
    tracking_uri: TrackingUri = None,
    track: Track = None,
    experiment: Annotated[Optional[str], typer.Option(
        help="MLflow experiment of the study (default: 'ablate STUDY: <absolute --out>'); one run "
             "per row.")] = None,
) -> None:
    """Run a named ablation study on one store under one protocol (resumable: finished rows are
    read back) and write study.md + study.png: each row's accuracy and macro F1, mean ± std over
    folds, with its protocol (leaky rows marked). Each row's folder holds its splits.json.
    paper-protocol compares protocols instead, on one model (--config)."""
    from store_schema.errors import MilmerError
    from train.protocols import PAPER_PROTOCOL, run_paper_protocol
    from train.study import run_study, study_fields
    from train.tracking import tracking_for

    try:
        protocol, folds = manifest_defaults(splits, protocol, folds)
        fields = study_fields(config, store=store[0], labels=labels, protocol=protocol, epochs=epochs,
                              folds=folds, device=device, seed=seed,
                              splits=str(Path(splits).resolve()) if splits else None,
                              subjects=parse_ints(subjects, "subjects"), per_subject=per_subject,
                              early_stopping=early_stopping)
        if study == PAPER_PROTOCOL:
            if len(store) > 1:
                raise fail(f"{PAPER_PROTOCOL} runs on one store; give one --store")
            from pipeline.weights.loop import load_loop_backbone

            found = run_paper_protocol(out, fields=fields, console=render.err_console,
                                       progress=bool(progress), backbone_loader=load_loop_backbone)
        else:
            tracking = tracking_for(out, uri=tracking_uri, track=track,
                                    experiment=experiment or f"ablate {study}: {out.resolve()}")
            rows = run_study(study, out, fields=fields, stores=store, console=render.err_console,
                             progress=progress, tracking=tracking)
    except MilmerError as err:
        raise fail(str(err)) from None
    if study == PAPER_PROTOCOL:
        render.print_protocol_rows(found)
        render.console.print(f"{out / 'study.md'}\n{out / 'study.png'}", highlight=False)
        return
    render.print_study_rows(rows, several_stores=len(store) > 1)
    render.console.print(f"{out / 'study.md'}\n{out / 'study.png'}", highlight=False)


def manifest_defaults(splits: str | None, protocol: str | None, folds: int | None
                      ) -> tuple[str | None, int | None]:
    """``--protocol`` and ``--folds``, filled from the manifest ``--splits`` where not given.
    Raises :class:`train.config.TrainError` for a manifest that cannot be read."""
    if splits is None:
        return protocol, folds
    from train.splits import read_manifest

    manifest = read_manifest(splits)
    return protocol or manifest["protocol"], folds or manifest["k"]
