"""Train and evaluate the heads, fold by fold, with checkpoints and resume.

``run_training(config, out)`` writes into ``out`` (RUN_DIR):

* ``config.json`` — the resolved :class:`TrainConfig`;
* ``splits.json`` — every fold's train / validation / test trials (:mod:`train.splits`);
* ``checkpoints/fold<F>.safetensors`` — model, AdamW state and RNG after the last finished epoch;
* ``selected/fold<F>.safetensors`` — the weights of the epoch chosen on validation;
* ``folds/fold<F>.json`` — per-epoch history and, once the fold is done, its test predictions;
* ``metrics.json`` — accuracy, macro_f1, per_class_f1, confusion, per_subject, protocol, leaky,
  chance, per-fold figures, the token weights used, skipped subjects;
* ``confusion.png``, ``curves.png``;
* ``backbone/fold<F>/`` — with ``finetune_backbone`` (Swin-tiny trained in the loop from the
  stored crops, :mod:`train.backbone_loop`): the selected epoch's backbone as a ``--weights``
  folder with its model card.

Optimisation is the paper's: AdamW (lr 1e-4, PyTorch defaults otherwise), the learning rate
set per epoch on a cosine from lr down to ``lr_final_factor`` x lr, batch 14, cross-entropy,
mixed precision on CUDA. Model selection sees validation only: whole trials of each training
fold are held out (:meth:`StoreData.hold_out_validation`, or a manifest's), evaluated every ``eval_every`` epochs,
and the epoch is chosen on them (:func:`select_epoch`); its weights
(``selected/fold<F>.safetensors``) are evaluated on the test fold once, after the
last epoch. The test labels never reach training, selection or the curves. Early stopping
(``early_stopping``: patience in epochs, off by default) ends a fold once that many epochs have
passed since the epoch :func:`select_epoch` would choose; the chosen epoch is then the one a full
run chooses among the epochs run (the cosine follows ``epochs`` either way).

Resume (``resume=True``): the run's settings must be unchanged except ``epochs`` (which may grow;
the cosine then follows the new length from where it is) and the speed-only fields. Finished folds
are kept; an unfinished fold restarts from its checkpoint with the epoch count, AdamW state and
RNG where they were, so an interrupted run resumed gives the same result as one left alone.
"""

from __future__ import annotations

import functools

import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from train.backbone_loop import BackboneLoader, BackboneLoop
from train.checkpoint import checkpoint_epoch, load_checkpoint, load_weights, save_checkpoint, save_weights
from train.config import TrainConfig, TrainError
from train.data import Batch, Split, StoreData
from train.splits import fit_rows, make_manifest, manifest_subjects, plan_folds, write_manifest
from train.metrics import classification_metrics, majority_rate, plot_confusion, plot_curves
from train.models import HeadModel, build_model, count_parameters, model_class
from train.schedule import cosine_factor, early_stop, select_epoch

RESUMABLE_CHANGES = {"epochs", "device", "amp", "cpu_bf16", "in_memory", "memory_fraction", "prefetch_batches",
                     "read_workers", "checkpoint_every", "run_folds", "grad_checkpointing", "micro_batch"}
"""Fields a resumed run may change: they alter the length or the speed of a run, not its model,
data or folds."""

EpochHook = Callable[[int, int, dict[str, Any]], None]
"""``(fold, epochs_done, history_row)``, called after each epoch's checkpoint is written."""


@dataclass
class FoldOutcome:
    split: Split
    y_pred: np.ndarray
    history: list[dict[str, Any]]
    seconds: float
    selected_epoch: int
    validation: dict[str, Any]
    n_fit: int
    mil_hits: int | None = None
    """Top-K MIL picks of test segments that are planted frames (synthetic stores only)."""
    mil_picks: int | None = None
    stopped_epoch: int | None = None
    """The epoch early stopping ended the fold after (None: every epoch ran)."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
    return device


@dataclass
class FoldStatistics:
    """The fit rows of a fold, read for a model's :meth:`~train.models.HeadModel.fit_statistics`
    only when it asks (:class:`train.models.FitStatistics`)."""

    data: StoreData
    rows: np.ndarray
    device: torch.device

    def eeg_windows(self) -> torch.Tensor:
        return self.data.eeg_rows(self.rows).to(self.device)

    def face_statistics(self, *, covariance: bool
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        mean, std, cov = self.data.token_statistics(self.rows, covariance=covariance)
        return mean.to(self.device), std.to(self.device), None if cov is None else cov.to(self.device)


def _to(batch: Batch, device: torch.device) -> Batch:
    move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
    return Batch(positions=batch.positions, labels=move(batch.labels), eeg=move(batch.eeg),
                 face=move(batch.face), frame_mask=move(batch.frame_mask))


class Trainer:
    """Everything one fold needs: data, device, precision, the batch loop."""

    def __init__(self, config: TrainConfig, data: StoreData, device: torch.device,
                 stream: bool, loop: BackboneLoop | None = None) -> None:
        self.config = config
        self.data = data
        self.device = device
        self.stream = stream
        self.loop = loop
        """Swin trained in the loop (``finetune_backbone``): crops in, micro-batches."""
        inputs = model_class(config.model.kind)  # what the model reads, before it is built
        self.use_eeg, self.use_face = inputs.uses_eeg, inputs.uses_face
        cuda_amp = config.amp and device.type == "cuda"
        cpu_bf16 = config.cpu_bf16 and device.type == "cpu"
        self.amp_dtype = (torch.bfloat16 if cpu_bf16 or (cuda_amp and torch.cuda.is_bf16_supported())
                          else torch.float16)
        self.autocast = ((lambda: torch.autocast(device.type, dtype=self.amp_dtype))
                         if cuda_amp or cpu_bf16 else nullcontext)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda_amp and self.amp_dtype == torch.float16)
        self.loss_fn = nn.CrossEntropyLoss()

    def new_model(self, fold: int) -> tuple[HeadModel, torch.optim.Optimizer]:
        torch.manual_seed(self.config.seed * 100_003 + fold)
        model = build_model(self.config.model, num_classes=len(self.data.class_names)).to(self.device)
        if self.loop is not None:
            model = self.loop.wrap(model)
            return model, self.loop.optimizer(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.config.lr,
                                      weight_decay=self.config.weight_decay)
        return model, optimizer

    def prepare(self, model: HeadModel, fit: np.ndarray) -> None:
        """Give the model the statistics it standardises its inputs with, computed on the rows it
        is fitted on (never validation or test)."""
        model.fit_statistics(FoldStatistics(self.data, fit, self.device))

    def batches(self, positions: np.ndarray, *, shuffle: bool, seed: list[int]):  # noqa: ANN201
        return self.data.batches(
            positions, batch_size=self.config.batch_size, shuffle=shuffle, seed=seed,
            eeg=self.use_eeg, face=self.use_face, stream=self.stream,
            prefetch=self.config.prefetch_batches, workers=self.config.read_workers,
            pin_memory=self.device.type == "cuda")

    def forward(self, model: HeadModel, batch: Batch) -> torch.Tensor:
        with self.autocast():
            return model(batch.eeg, batch.face, batch.frame_mask)

    def train_epoch(self, model: HeadModel, optimizer: torch.optim.Optimizer, positions: np.ndarray,
                    seed: list[int], tick: Callable[[int, float, float], None]) -> tuple[float, float]:
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for batch in self.batches(positions, shuffle=True, seed=seed):
            batch = _to(batch, self.device)
            optimizer.zero_grad(set_to_none=True)
            loss = torch.zeros(())
            for part in _parts(batch, self.loop.micro_batch if self.loop else len(batch)):
                logits = self.forward(model, part)  # the batch's mean loss, accumulated over parts
                part_loss = self.loss_fn(logits.float(), part.labels)
                auxiliary = model.auxiliary_loss()
                if auxiliary is not None:
                    part_loss = part_loss + auxiliary
                if len(part) < len(batch):
                    part_loss = part_loss * (len(part) / len(batch))
                self.scaler.scale(part_loss).backward()
                loss = loss + part_loss.detach().cpu()
                correct += int((logits.argmax(1) == part.labels).sum())
            self.scaler.step(optimizer)
            self.scaler.update()
            n = len(batch)
            total_loss += float(loss) * n
            seen += n
            tick(n, total_loss / seen, correct / seen)
        return total_loss / max(seen, 1), correct / max(seen, 1)

    @torch.no_grad()
    def predict(self, model: HeadModel, positions: np.ndarray) -> tuple[np.ndarray, float]:
        """Predicted class of every position (in order) and the mean loss."""
        model.eval()
        preds, total = [], 0.0
        for batch in self.batches(positions, shuffle=False, seed=[0]):
            batch = _to(batch, self.device)
            logits = self.forward(model, batch).float()
            total += float(self.loss_fn(logits, batch.labels)) * len(batch)
            preds.append(logits.argmax(1).cpu().numpy())
        return (np.concatenate(preds) if preds else np.empty(0, np.int64)), total / max(len(positions), 1)

    @torch.no_grad()
    def mil_picks(self, model: HeadModel, positions: np.ndarray) -> np.ndarray | None:
        """(n, K) frames the top-K MIL scorer keeps for ``positions``; ``None`` without top-K MIL."""
        if not (model.uses_face and len(positions)):
            return None
        model.eval()
        picks = []
        for batch in self.batches(positions, shuffle=False, seed=[0]):
            batch = _to(batch, self.device)
            with self.autocast():
                kept = model.frame_picks(batch.face, batch.frame_mask)
            if kept is None:
                return None
            picks.append(kept.cpu().numpy())
        return np.concatenate(picks)


def _parts(batch: Batch, size: int) -> list[Batch]:
    """``batch`` in micro-batches of ``size`` segments (itself when it fits)."""
    if len(batch) <= size:
        return [batch]
    cut = lambda t, s: None if t is None else t[s]  # noqa: E731
    return [Batch(positions=batch.positions[i:i + size], labels=batch.labels[i:i + size],
                  eeg=cut(batch.eeg, slice(i, i + size)), face=cut(batch.face, slice(i, i + size)),
                  frame_mask=cut(batch.frame_mask, slice(i, i + size)))
            for i in range(0, len(batch), size)]


def _check_resume(out: Path, config: TrainConfig) -> None:
    path = out / "config.json"
    if not path.is_file():
        raise TrainError(f"{out}: nothing to resume (no config.json); run without --resume")
    try:
        old = TrainConfig.model_validate_json(path.read_text())
    except ValueError as err:
        raise TrainError(f"{path}: unreadable run config ({str(err).splitlines()[0]})") from None
    before, after = old.model_dump(mode="json"), config.model_dump(mode="json")
    changed = sorted(k for k in before if before[k] != after[k] and k not in RESUMABLE_CHANGES)
    if changed:
        detail = ", ".join(f"{k}: {before[k]!r} -> {after[k]!r}" for k in changed)
        raise TrainError(f"{out}: --resume with different settings ({detail}); only "
                         f"{', '.join(sorted(RESUMABLE_CHANGES))} may change. Use a new --out")
    if config.epochs < old.epochs:
        raise TrainError(f"{out}: --resume cannot shorten the run ({old.epochs} -> {config.epochs} epochs)")


def run_training(
    config: TrainConfig,
    out: Path | str,
    *,
    resume: bool = False,
    progress: bool | None = None,
    console: Console | None = None,
    on_epoch_end: EpochHook | None = None,
    backbone_loader: BackboneLoader | None = None,
    observe_test: bool = False,
) -> dict[str, Any]:
    """Train every fold of ``config.protocol`` (or ``config.run_folds``), write the outputs,
    return the metrics. Raises :class:`TrainError` / :class:`store_schema.errors.StoreError`.

    ``backbone_loader``: where ``finetune_backbone`` gets its starting Swin
    (:mod:`train.backbone_loop`).
    ``config.per_subject``: one run per subject, :func:`train.per_subject.run_per_subject`.
    ``observe_test`` (``milmer ablate paper-protocol`` only, never a setting): also score the
    test fold after every epoch, recorded as ``test_accuracy`` in the history; it chooses
    nothing here (the figures of this run stay the validation-chosen ones), the study that asks
    for it reads the curve and labels what it takes from it as leaky."""
    out = Path(out)
    console = console or Console(stderr=True, soft_wrap=True)
    started = time.perf_counter()
    if resume:
        _check_resume(out, config)
    elif (out / "config.json").exists():
        raise TrainError(f"{out}: already holds a run; pass --resume to continue it, or choose "
                         "another --out")
    if config.per_subject:
        from train.per_subject import run_per_subject

        train_one = functools.partial(run_training, backbone_loader=backbone_loader)
        return run_per_subject(config, out, train_one=train_one, resume=resume, progress=progress,
                               console=console, on_epoch_end=on_epoch_end, observe_test=observe_test)
    needs_tokens = model_class(config.model.kind).uses_face
    data = StoreData.open(config.store, labels=config.labels, boundaries=config.deap3,
                          subjects=config.subjects if config.subjects is not None
                          else manifest_subjects(config.splits), needs_tokens=needs_tokens,
                          keep_faceless=config.keep_faceless,
                          face_from="crops" if config.finetune_backbone else "tokens")
    for line in data.skipped:
        console.print(f"[yellow]skipped[/] {line}", highlight=False)
    for f in data.faceless:
        if not f["whole_subject"]:
            console.print(f"[yellow]dropped[/] s{f['subject']:02d}: {f['segments']} segments without "
                          f"a face video (trials {f['trials']}, 0-based)", highlight=False)
    device = resolve_device(config.device)
    loop = (BackboneLoop(config, backbone_loader, device=device, token_weights=data.weights_provenance,
                         token_fingerprint=data.weights_fingerprint, where=data.store.url)
            if config.finetune_backbone else None)
    if needs_tokens and data.random_weights and loop is None:
        console.print(f"[yellow]note[/]: tokens come from random Swin weights "
                      f"({data.weights_fingerprint}); face results say nothing about real faces",
                      highlight=False)
    all_splits = plan_folds(data, config)  # validation drawn, or read from config.splits
    splits = all_splits
    if config.run_folds is not None:
        unknown = sorted(set(config.run_folds) - {s.fold for s in all_splits})
        if unknown:
            raise TrainError(f"run_folds {unknown} do not exist: {config.protocol} has folds "
                             f"0..{len(all_splits) - 1}")
        splits = [s for s in all_splits if s.fold in set(config.run_folds)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.model_dump_json(indent=2) + "\n")
    write_manifest(out / "splits.json", make_manifest(
        data, all_splits, protocol=config.protocol, seed=config.seed, k=config.folds,
        validation_fraction=config.validation_fraction))
    stream = loop is not None or config.in_memory == "never" or (
        config.in_memory == "auto" and needs_tokens and not data.fits_in_memory(config.memory_fraction))
    load_started = time.perf_counter()
    if stream:
        data.load_eeg()
    else:
        data.load()
    load_seconds = time.perf_counter() - load_started
    console.print(
        f"{len(data)} segments of {len(data.subjects)} subjects, {config.labels.value} "
        f"({', '.join(data.class_names)}), protocol {config.protocol} ({len(splits)} fold(s) run), "
        f"model {config.model.kind}, device {device}, data "
        f"{'streamed from the store' if stream else f'in memory (read in {load_seconds:.1f} s)'}",
        highlight=False)
    trainer = Trainer(config, data, device, stream, loop)
    show = console.is_terminal if progress is None else progress
    outcomes: list[FoldOutcome] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, disable=not show, transient=False) as bar:
        for split in splits:
            outcomes.append(_run_fold(trainer, split, out, resume=resume, bar=bar,
                                      n_folds=len(splits), on_epoch_end=on_epoch_end,
                                      observe_test=observe_test))
            o = outcomes[-1]
            acc = float(np.mean(o.y_pred == data.labels[split.test])) if len(split.test) else float("nan")
            stopped = f", stopped early after epoch {o.stopped_epoch}" if o.stopped_epoch else ""
            console.print(f"{split.name}: test accuracy {acc:.3f} (chance "
                          f"{majority_rate(data.labels[split.test]):.3f}, n={len(split.test)}), "
                          f"{o.seconds:.1f} s{stopped}", highlight=False)
    # Folds finished by earlier invocations into this run folder (e.g. other --run-folds) count too.
    ran = {s.fold for s in splits}
    for split in all_splits:
        if split.fold not in ran:
            done = _finished_fold(out, split, config.epochs)
            if done is not None:
                outcomes.append(done)
    outcomes.sort(key=lambda o: o.split.fold)
    n_params = count_parameters(build_model(config.model, num_classes=len(data.class_names)))
    metrics = _write_outputs(out, config, data, outcomes, n_params=n_params + (
        loop.trainable_parameters() if loop else 0), seconds=time.perf_counter() - started,
        stream=stream, load_seconds=load_seconds, extra=None if loop is None else loop.metrics(
            out, [o.split.fold for o in outcomes], data.weights_provenance))
    console.print(f"accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}, chance "
                  f"{metrics['chance']:.3f}{' (LEAKY segment split)' if metrics['leaky'] else ''}; "
                  f"wrote {out}/metrics.json", highlight=False)
    return metrics


def _finished_fold(out: Path, split: Split, epochs: int) -> FoldOutcome | None:
    path = out / "folds" / f"fold{split.fold}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if not (record.get("done") and record.get("epochs") == epochs and "selected_epoch" in record
            and record.get("test_positions") == split.test.tolist()):
        return None
    return FoldOutcome(split, np.asarray(record["y_pred"], np.int64), record["history"],
                       record.get("seconds", 0.0), record["selected_epoch"], record["validation"],
                       record["n_fit"], record.get("mil_hits"), record.get("mil_picks"),
                       record.get("stopped_epoch"))


def _run_fold(trainer: Trainer, split: Split, out: Path, *, resume: bool, bar: Progress,
              n_folds: int, on_epoch_end: EpochHook | None, observe_test: bool = False) -> FoldOutcome:
    config, data = trainer.config, trainer.data
    ckpt = out / "checkpoints" / f"fold{split.fold}.safetensors"
    best_path = out / "selected" / f"fold{split.fold}.safetensors"
    record_path = out / "folds" / f"fold{split.fold}.json"
    record = json.loads(record_path.read_text()) if resume and record_path.is_file() else {}
    finished = _finished_fold(out, split, config.epochs) if resume else None
    if finished is not None:
        return finished
    fit, val = fit_rows(split), split.validation if split.validation is not None else split.train[:0]
    model, optimizer = trainer.new_model(split.fold)
    trainer.prepare(model, fit)
    history: list[dict[str, Any]] = []
    start = 0
    if resume and checkpoint_epoch(ckpt) is not None:
        meta = load_checkpoint(ckpt, model=model, optimizer=optimizer, device=trainer.device)
        start = int(meta["epoch"])
        history = [row for row in json.loads(meta.get("history", "[]")) if row["epoch"] <= start]
    seconds = float(record.get("seconds", 0.0)) if start else 0.0
    stopped: int | None = None
    task = bar.add_task(f"{split.name} ({split.fold + 1}/{n_folds}) epoch {start + 1}/{config.epochs}",
                        total=len(fit) * (config.epochs - start), stats="")
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        factor = cosine_factor(epoch, config.epochs, config.lr_final_factor)
        lr = config.lr * factor
        for group in optimizer.param_groups:  # a group may have its own peak (the backbone's)
            group["lr"] = group.get("base_lr", config.lr) * factor
        bar.update(task, description=f"{split.name} ({split.fold + 1}/{n_folds}) "
                                     f"epoch {epoch + 1}/{config.epochs}")

        def tick(n: int, loss: float, acc: float) -> None:
            bar.update(task, advance=n, stats=f"loss {loss:.3f} acc {acc:.3f}")

        train_loss, train_acc = trainer.train_epoch(model, optimizer, fit,
                                                    [config.seed, split.fold, epoch], tick)
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
                               "train_accuracy": train_acc, "val_loss": None, "val_accuracy": None}
        last = epoch + 1 == config.epochs
        if len(val) and (last or (epoch + 1) % config.eval_every == 0):
            y_val, row["val_loss"] = trainer.predict(model, val)
            row["val_accuracy"] = float(np.mean(y_val == data.labels[val]))
        if observe_test and len(split.test):  # paper-protocol study only: see run_training
            y_seen, _ = trainer.predict(model, split.test)
            row["test_accuracy"] = float(np.mean(y_seen == data.labels[split.test]))
        seconds += time.perf_counter() - t0
        row["seconds"] = round(seconds, 3)
        history.append(row)
        if select_epoch(history, config.selection) == epoch + 1 or not len(val):
            save_weights(best_path, model=model, epoch=epoch + 1)  # before the checkpoint: resumable
        stop = early_stop(history, config.selection, config.early_stopping) and not last
        if last or stop or (epoch + 1) % config.checkpoint_every == 0:
            save_checkpoint(ckpt, model=model, optimizer=optimizer, epoch=epoch + 1,
                            meta={"fold": str(split.fold), "history": history})
            _write_json(record_path, {"fold": split.fold, "name": split.name, "done": False,
                                      "epochs": epoch + 1, "seconds": seconds, "history": history})
        if on_epoch_end is not None:
            on_epoch_end(split.fold, epoch + 1, row)
        if stop:
            stopped = epoch + 1
            break
    bar.remove_task(task)
    selected = select_epoch(history, config.selection) or config.epochs
    if load_weights(best_path, model=model) != selected:
        raise TrainError(f"{best_path}: holds another epoch than the selected {selected}; delete "
                         f"it and checkpoints/fold{split.fold}.safetensors to restart the fold")
    y_pred, _ = trainer.predict(model, split.test)  # the only look at the test fold
    picks = trainer.mil_picks(model, split.test) if data.planted_frames is not None else None
    hits = (None if picks is None else
            int(data.planted_frames[split.test[:, None], picks].sum()))
    chosen = next(r for r in history if r["epoch"] == selected)
    validation = {"n_segments": int(len(val)), "n_trials": int(len(np.unique(
        data.subject[val] * 1_000_003 + data.trial[val]))) if len(val) else 0,
                  "accuracy": chosen["val_accuracy"], "loss": chosen["val_loss"]}
    if trainer.loop is not None:  # the selected epoch's backbone, before the fold counts as done
        trainer.loop.export(out, fold=split.fold, model=model, selected_epoch=selected,  # type: ignore[arg-type]
                            validation=validation)
    _write_json(record_path, {
        "fold": split.fold, "name": split.name, "done": True, "epochs": config.epochs,
        "seconds": seconds, "history": history, "selected_epoch": selected,
        "validation": validation, "n_fit": int(len(fit)), "test_positions": split.test.tolist(),
        "stopped_epoch": stopped,
        "mil_hits": hits, "mil_picks": None if picks is None else int(picks.size),
        "y_true": data.labels[split.test].tolist(), "y_pred": y_pred.tolist()})
    return FoldOutcome(split, y_pred, history, seconds, selected, validation, int(len(fit)),
                       hits, None if picks is None else int(picks.size), stopped)


def _hit_rate(data: StoreData, outcomes: list[FoldOutcome]) -> dict[str, Any] | None:
    """How often top-K MIL kept a frame the synthetic store planted the face cue in, pooled over
    the test folds, beside the rate of picking at random."""
    if data.planted_frames is None or any(o.mil_picks is None for o in outcomes):
        return None
    picks = sum(o.mil_picks for o in outcomes)  # type: ignore[misc]
    test = np.concatenate([o.split.test for o in outcomes])
    return {"rate": sum(o.mil_hits for o in outcomes) / max(picks, 1),  # type: ignore[misc]
            "random_rate": float(data.planted_frames[test].mean()), "n_picks": picks}


def _mean_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    tmp.replace(path)


def _write_outputs(out: Path, config: TrainConfig, data: StoreData, outcomes: list[FoldOutcome], *,
                   n_params: int, seconds: float, stream: bool, load_seconds: float,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    test = np.concatenate([o.split.test for o in outcomes])
    y_pred = np.concatenate([o.y_pred for o in outcomes])
    y_true = data.labels[test]
    metrics: dict[str, Any] = classification_metrics(
        y_true=y_true, y_pred=y_pred, subjects=data.subject[test], class_names=data.class_names)
    metrics.update({
        "protocol": config.protocol,
        "leaky": config.leaky,
        "leak_note": ("segment split: windows of one trial are in both training and test, so this "
                      "accuracy is optimistic" if config.leaky else None),
        "labels": config.labels.value,
        "class_names": list(data.class_names),
        "model": config.model.kind,
        "n_parameters": n_params,
        "epochs": config.epochs,
        "folds": [{"fold": o.split.fold, "name": o.split.name, "n_train": int(len(o.split.train)),
                   "n_test": int(len(o.split.test)),
                   "accuracy": float(np.mean(o.y_pred == data.labels[o.split.test])) if len(o.split.test) else None,
                   "chance": majority_rate(data.labels[o.split.test]), "seconds": round(o.seconds, 2),
                   "n_fit": o.n_fit, "selected_epoch": o.selected_epoch,
                   "stopped_epoch": o.stopped_epoch, "validation": o.validation}
                  for o in outcomes],
        "selected_epochs": [o.selected_epoch for o in outcomes],
        "early_stopping": {
            "patience": config.early_stopping,
            "monitor": (f"validation {'loss' if config.selection == 'val_loss' else 'accuracy'} "
                        f"(the selection criterion, {config.selection}); a fold stops once "
                        "`patience` epochs have passed since the epoch it would choose"
                        if config.early_stopping else "off: every epoch runs"),
            "stopped_epochs": [o.stopped_epoch for o in outcomes]},
        "mil_planted_hit_rate": _hit_rate(data, outcomes),
        "validation": {
            "fraction": config.validation_fraction, "selection": config.selection,
            "eval_every": config.eval_every,
            "drawn": ("whole trials of each training fold, per class round(fraction x trials) "
                      "(at least one where a class has two or more, never all), by (seed, fold); "
                      "the epoch is chosen on them and the test fold is evaluated once, with the "
                      "chosen epoch's weights" if config.validation_fraction > 0 else
                      "no validation (fraction 0): the last epoch is kept"),
            "accuracy": _mean_or_none([o.validation["accuracy"] for o in outcomes]),
            "loss": _mean_or_none([o.validation["loss"] for o in outcomes])},
        "subjects": data.subject_numbers,
        "skipped_subjects": data.skipped,
        "n_segments": len(data),
        "test_segments_without_video": int((~data.has_video[test]).sum()),
        "faceless": {
            "dropped": bool(data.needs_tokens and not config.keep_faceless),
            "n_segments": int(sum(f["segments"] for f in data.faceless)),
            "subjects_without_video": [f"s{f['subject']:02d}" for f in data.faceless if f["whole_subject"]],
            "by_subject": {f"s{f['subject']:02d}": {"segments": f["segments"], "trials": f["trials"]}
                           for f in data.faceless},
            "note": ("face model: segments without a face video (and subjects without any) are "
                     "left out of training and test" if data.needs_tokens and not config.keep_faceless
                     else "kept: black crops of missing videos are trained and tested on "
                     "(contaminated)" if data.needs_tokens else "EEG-only: every segment is used")},
        "weights_fingerprint": data.weights_fingerprint,
        "random_weights": data.random_weights,
        "token_weights": data.weights_provenance,
        "data": "streamed" if stream else "in memory",
        "load_seconds": round(load_seconds, 2),
        "seconds": round(seconds, 1),
        "store": config.store,
        "backbone": {"trained": "frozen: cached tokens from the store"},
        **(extra or {}),
    })
    _write_json(out / "metrics.json", metrics)
    what = f"{config.model.kind}, {config.labels.value}, {config.protocol} protocol"
    if config.leaky:
        what += " (LEAKY)"
    plot_confusion(out / "confusion.png", confusion=metrics["confusion"], class_names=data.class_names,
                   title=f"{what}\naccuracy {metrics['accuracy']:.3f}, macro F1 "
                         f"{metrics['macro_f1']:.3f}, chance {metrics['chance']:.3f}, n={len(y_true)}")
    plot_curves(out / "curves.png", histories={o.split.name: o.history for o in outcomes},
                chance=metrics["chance"], selected={o.split.name: o.selected_epoch for o in outcomes},
                title=f"{what}: {len(outcomes)} fold(s), {config.epochs} epochs; train and "
                      "validation (the test fold is evaluated once, at the selected epoch)")
    return metrics
