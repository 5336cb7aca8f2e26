"""``finetune``: Swin-tiny fine-tuned on a face-expression dataset, written as a weights folder.

One call reads the data (:mod:`.data`), builds the model from ``weights`` (any spec
:func:`~pipeline.weights.swin_source.resolve_weights` takes) plus a fresh head, trains with the
recipe of :mod:`.model`, keeps the epoch with the best validation accuracy, evaluates the test
split once with it, and writes the folder of :mod:`.outputs` plus ``model_card.json``. After every
epoch ``checkpoint.pt`` holds everything needed to continue (``resume=True``); resuming with other
data or settings is refused, naming what differs.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import FinetuneInputError, ParameterError
from pipeline.weights.finetune import model as recipe
from pipeline.weights.finetune import outputs
from pipeline.weights.finetune.data import FaceDataset, Log, describe, image_at, log_to_stderr, read_dataset
from pipeline.weights.swin import check_weights, load_backbone
from store_schema.run.progress import Reporter, choose, is_terminal
from pipeline.weights.swin_source import IMAGENET_NORMALISATION, MODEL_NAME, Normalisation, resolve_weights

DEFAULTS: dict[str, Any] = {"weights": "random:0", "epochs": 10, "batch_size": 32, "lr": 2e-4,
                            "layer_decay": recipe.RECIPE["layer_decay"], "val_fraction": 0.1, "seed": 0,
                            "device": "auto"}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ParameterError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"--device {device}: no CUDA device on this machine; use --device cpu")
    return chosen


def peak_gpu_memory_mib(device: torch.device) -> float | None:
    """What torch allocated at most on ``device`` so far (None off CUDA)."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def finetune(
    data: Path | str,
    out: Path | str,
    *,
    weights: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    layer_decay: float | None = None,
    val_fraction: float | None = None,
    device: str = DEFAULTS["device"],
    seed: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
    log: Log = log_to_stderr,
    model_kwargs: dict[str, Any] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune and write ``out``; return the model card.

    A setting left ``None`` takes :data:`DEFAULTS`, or on ``resume`` the value the run was started
    with (a value given must equal it). ``model_kwargs`` (tests only): a smaller Swin for
    :func:`timm.create_model`, randomly initialised (``weights`` must be random).
    ``on_epoch_end`` is called with each epoch's history row after its checkpoint is written."""
    from pipeline.stages.tokens.params import cpu_has_native_bf16

    out = Path(out)
    checkpoint = _load_checkpoint(out) if resume else _fresh(out)
    given = {"weights": weights, "epochs": epochs, "batch_size": batch_size, "lr": lr,
             "layer_decay": layer_decay, "val_fraction": val_fraction, "seed": seed}
    started_with = (checkpoint or {}).get("arguments", {})
    args = {k: v if v is not None else started_with.get(k, DEFAULTS[k]) for k, v in given.items()}
    if args["epochs"] < 1 or args["batch_size"] < 1 or not args["lr"] > 0:
        raise ParameterError(f"epochs ({args['epochs']}) and batch size ({args['batch_size']}) must "
                             f"be >= 1 and lr ({args['lr']}) > 0")
    if not 0 < args["layer_decay"] <= 1:
        raise ParameterError(f"layer decay ({args['layer_decay']}) must be in (0, 1]: the factor per "
                             "depth below the head (1 = the same lr everywhere)")
    epochs, batch_size, lr, seed = args["epochs"], args["batch_size"], args["lr"], args["seed"]
    torch_device = resolve_device(device)
    # bad weights are refused before the data is read (check_weights reads them, builds nothing)
    source = (resolve_weights(args["weights"]) if model_kwargs
              else check_weights(args["weights"], model_name=MODEL_NAME))
    if model_kwargs and not source.random:
        raise ParameterError("a test configuration (model_kwargs) starts from random weights only")
    dataset = read_dataset(data, val_fraction=args["val_fraction"], seed=seed, log=log)
    settings = {"data_format": dataset.format, "data_sha256": dataset.data_sha256,
                "classes": dataset.classes, "weights": source.fingerprint, "epochs": epochs,
                "batch_size": batch_size, "lr": lr, "layer_decay": args["layer_decay"],
                "val_fraction": args["val_fraction"], "seed": seed, "model_args": dict(model_kwargs or {})}
    if checkpoint is not None:
        _check_resume(out, checkpoint["settings"], settings)
    out.mkdir(parents=True, exist_ok=True)
    precision = recipe.choose_precision(torch_device, cpu_has_native_bf16())

    if model_kwargs:
        backbone, norm = recipe.tiny_backbone(model_kwargs, seed=int(source.seed or 0)), IMAGENET_NORMALISATION
    else:
        backbone, norm = load_backbone(source, model_name=MODEL_NAME)
    model = recipe.build_model(backbone, len(dataset.classes), seed=seed).to(torch_device)
    train = dataset.splits["train"]
    steps_per_epoch = math.ceil(len(train) / batch_size)
    optimizer, scheduler = recipe.make_optimizer(model, lr, epochs * steps_per_epoch,
                                                  layer_decay=args["layer_decay"])
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.RECIPE["label_smoothing"])
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": None, "accuracy": -1.0, "state": None, "validation": None}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("scaler"):  # empty when saved without fp16 (CPU, bf16)
            scaler.load_state_dict(checkpoint["scaler"])
        history, best = checkpoint["history"], checkpoint["best"]
        if best["state"] is None:  # the last epoch was the best
            best["state"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        log(f"resuming {out / outputs.CHECKPOINT_FILE} after epoch {len(history)} of {epochs}")

    val = dataset.splits["val"]
    # bars on a terminal (or when asked); elsewhere nothing but the one line per epoch below
    reporter = choose(True) if progress or (progress is None and is_terminal()) else Reporter()
    # on a GPU, decoding and padding run in threads (OpenCV releases the GIL) so it is not kept
    # waiting; on a CPU the cores are the model's
    workers = max(1, min(8, os.cpu_count() or 1)) if torch_device.type == "cuda" else 1
    with ThreadPoolExecutor(max_workers=workers) as pool, closing(reporter):
        for epoch in range(len(history) + 1, epochs + 1):
            started = time.perf_counter()
            model.train()
            generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
            order = torch.randperm(len(train), generator=generator).tolist()
            losses: list[float] = []
            with reporter.task(f"epoch {epoch}/{epochs}", total=steps_per_epoch,
                               unit="batches") as task:
                for start in range(0, len(order), batch_size):
                    idx = order[start:start + batch_size]
                    x = recipe.to_tensor(list(pool.map(image_at, [train.refs[i] for i in idx])), norm, torch_device)
                    x = recipe.augment(x, generator, norm)
                    y = torch.tensor([train.labels[i] for i in idx], device=torch_device)
                    with recipe.autocast(torch_device, precision):
                        loss = loss_fn(model(x).float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    losses.append(float(loss.detach()))
                    task.advance(1, note=f"loss {losses[-1]:.3f}")
            train_seconds = time.perf_counter() - started
            predictions = recipe.predict(model, val.refs, image_at, norm, torch_device, precision, batch_size)
            val_metrics = recipe.metrics(val.labels, predictions, dataset.classes)
            row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_accuracy": val_metrics["accuracy"],
                   "val_macro_f1": val_metrics["macro_f1"], "lr_end": scheduler.get_last_lr()[-1],
                   "seconds": round(time.perf_counter() - started, 2),
                   "train_images_per_second": round(len(order) / train_seconds, 2),
                   "peak_gpu_memory_mib": peak_gpu_memory_mib(torch_device)}
            history.append(row)
            if val_metrics["accuracy"] > best["accuracy"]:
                best = {"epoch": epoch, "accuracy": val_metrics["accuracy"], "validation": val_metrics,
                        "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
            log(f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f}, "
                f"val accuracy {row['val_accuracy']:.4f}, macro F1 {row['val_macro_f1']:.4f}, "
                f"{row['train_images_per_second']:.1f} training images/s")
            # the best state is the model's own when this epoch is the best: stored once
            kept = {**best, "state": None} if best["epoch"] == epoch else best
            _save_checkpoint(out, {"settings": settings, "arguments": args, "model": model.state_dict(),
                                   "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                   "scaler": scaler.state_dict(),
                                   "history": history, "best": kept})
            if on_epoch_end is not None:
                on_epoch_end(row)

    model.load_state_dict(best["state"])
    test = dataset.splits["test"]
    test_metrics = recipe.metrics(
        test.labels, recipe.predict(model, test.refs, image_at, norm, torch_device, precision, batch_size),
        dataset.classes)
    return _write_outputs(out, dataset, source, settings, model_kwargs, norm, best, history,
                          test_metrics, device=str(torch_device), precision=precision)


def evaluate_saved(out: Path | str, data: Path | str, *, split: str = "test",
                   device: str = "cpu", log: Log = log_to_stderr) -> dict[str, Any]:
    """Re-evaluate the classifier saved in ``out`` on ``split`` of ``data``, with the splits,
    batch size and precision its model card records."""
    import json

    out = Path(out)
    card = json.loads((out / outputs.CARD_FILE).read_text())
    settings = card["settings"]
    dataset = read_dataset(data, val_fraction=settings["val_fraction"], seed=settings["seed"], log=log)
    model, norm, classes = outputs.load_saved(out)
    torch_device = resolve_device(device)
    chosen = dataset.splits[split]
    predictions = recipe.predict(model.to(torch_device), chosen.refs, image_at, norm, torch_device,
                                 card["precision"], settings["batch_size"])
    return recipe.metrics(chosen.labels, predictions, classes)


def _fresh(out: Path) -> None:
    for name in (outputs.CHECKPOINT_FILE, outputs.CARD_FILE):
        if (out / name).exists():
            raise FinetuneInputError(out / name, "OUT already holds a fine-tuning run: continue it "
                                                 "with --resume or choose another --out")
    return None


def _load_checkpoint(out: Path) -> dict[str, Any]:
    path = out / outputs.CHECKPOINT_FILE
    if not path.is_file():
        raise FinetuneInputError(path, "no checkpoint to resume from (run without --resume first)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - one line for any unreadable checkpoint
        raise FinetuneInputError(path, f"unreadable checkpoint ({type(err).__name__}: {err})") from None


def _check_resume(out: Path, before: dict[str, Any], now: dict[str, Any]) -> None:
    differ = [f"{key} {before.get(key)!r} -> {value!r}" for key, value in now.items()
              if before.get(key) != value]
    if differ:
        raise FinetuneInputError(out / outputs.CHECKPOINT_FILE,
                                 "cannot resume with other data or settings: " + "; ".join(differ))


def _save_checkpoint(out: Path, state: dict[str, Any]) -> None:
    tmp = out / (outputs.CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out / outputs.CHECKPOINT_FILE)


def _write_outputs(out: Path, dataset: FaceDataset, source: Any, settings: dict[str, Any],
                   model_kwargs: dict[str, Any] | None, norm: Normalisation, best: dict[str, Any],
                   history: list[dict[str, Any]], test_metrics: dict[str, Any], *, device: str,
                   precision: str) -> dict[str, Any]:
    sha = outputs.save_model(out, best["state"], classes=dataset.classes, norm=norm,
                             model_kwargs=model_kwargs)
    outputs.plot_curves(out / outputs.CURVES_FILE, history, best["epoch"])
    outputs.plot_confusion(out / outputs.CONFUSION_FILE, test_metrics["confusion"], dataset.classes,
                           f"test set, epoch {best['epoch']}\n(selected on validation)")
    data = describe(dataset)
    card = {
        "model": MODEL_NAME, "model_args": dict(model_kwargs or {}),
        "base_weights": source.provenance(), "base_weights_described": source.describe(),
        "normalisation": norm.as_dict(),
        "data": data, "classes": dataset.classes, "split_counts": data["split_counts"],
        "images_skipped": data["images_skipped"],
        "recipe": {**recipe.RECIPE,
                   "epochs": settings["epochs"], "batch_size": settings["batch_size"],
                   "lr": settings["lr"], "layer_decay": settings["layer_decay"],
                   "val_fraction": settings["val_fraction"], "seed": settings["seed"]},
        "settings": settings, "device": device, "precision": precision,
        "libraries": outputs.library_versions(),
        "selected_epoch": best["epoch"], "history": history,
        "validation": best["validation"], "test": test_metrics,
        "weights_sha256": sha,
        "files": [outputs.MODEL_FILE, outputs.CONFIG_FILE, outputs.CURVES_FILE, outputs.CONFUSION_FILE,
                  outputs.CHECKPOINT_FILE],
    }
    outputs.write_json(out / outputs.CARD_FILE, card)
    return card
