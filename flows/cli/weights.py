"""``milmer finetune``: make the face backbone the tokens stage loads. A thin shell over
:func:`pipeline.weights.finetune.run.finetune`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

import flows.cli.render as render
from flows.cli.errors import fail
from flows.cli.options import ProgressFlag

app = typer.Typer()


@app.command()
def finetune(
    data: Annotated[Path, typer.Option(help=(
        "Face-expression data: an image folder (train/<class>/*.png|jpg, optional val/ and test/; "
        "or <class>/* only), a FER2013 CSV (emotion,pixels,Usage) or a RAF-DB folder "
        "(EmoLabel/list_patition_label.txt + Image/aligned/)."))],
    out: Annotated[Path, typer.Option(help=(
        "Output folder: model.safetensors, config.json, model_card.json, curves.png, confusion.png, "
        "checkpoint.pt; give it to --weights."))],
    weights: Annotated[Optional[str], typer.Option(help=(
        "Starting weights: random[:SEED], a timm file, a Hugging Face or timm folder, "
        "hf-hub:ORG/NAME or hf-hub:ORG/NAME@REV, imagenet or face-emotion. Default random:0."))] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (default 10).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size (default 32).")] = None,
    lr: Annotated[Optional[float], typer.Option(
        help="Peak learning rate of the head (default 2e-4).")] = None,
    layer_decay: Annotated[Optional[float], typer.Option(help=(
        "Learning-rate factor per depth below the head, in (0, 1] (default 0.75; 1 = no decay, "
        "for a start from random weights)."))] = None,
    val_fraction: Annotated[Optional[float], typer.Option(help=(
        "Fraction of each class carved out of train for a missing val (and test) split (default 0.1)."))] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA with AMP when present), cpu, cuda, cuda:N.")] = "auto",
    seed: Annotated[Optional[int], typer.Option(
        help="Seed of the carved splits, the head, shuffling and augmentation (default 0).")] = None,
    resume: Annotated[bool, typer.Option(help=(
        "Continue the run in --out from its checkpoint.pt; settings not given are the run's own."))] = False,
    progress: ProgressFlag = None,
) -> None:
    """Fine-tune Swin-tiny on a face-expression dataset; the epoch is chosen on validation and
    the test split evaluated once. The output folder is a --weights folder."""
    from store_schema.errors import MilmerError
    from pipeline.weights.finetune.run import finetune as run_finetune

    def log(line: str) -> None:
        render.err_console.print(line, highlight=False, markup=False)

    try:
        card = run_finetune(data, out, weights=weights, epochs=epochs, batch_size=batch_size, lr=lr,
                            layer_decay=layer_decay, val_fraction=val_fraction, device=device,
                            seed=seed, resume=resume,
                            progress=progress, log=log)
    except MilmerError as err:
        raise fail(str(err)) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted; continue with `milmer finetune --data {data} --out {out} --resume`",
                   code=130) from None
    test = card["test"]
    render.console.print(
        f"selected epoch {card['selected_epoch']}: validation accuracy "
        f"{card['validation']['accuracy']:.4f}; test accuracy {test['accuracy']:.4f}, "
        f"macro F1 {test['macro_f1']:.4f} ({test['n']} images)\n{out}  (use --weights {out})",
        highlight=False)
