"""`milmer train --finetune-backbone`: Swin trained in the loop from the stored crops.

A one-subject store of 4 one-segment trials with noise crops (DEAP-2 valence, fold 0 of 4: 2
segments fitted, 1 validated, 1 tested, one epoch). A tiny Swin (same code, a few thousand
parameters) shows that the backbone learns with every stage trainable and not at all with
``freeze_stages=4``; the real Swin-tiny (last stage trainable, to stay cheap) shows that the
exported folder is a ``--weights`` folder whose tokens, made by the tokens stage's own code, give
the run's test predictions back through the run's heads.

Precision: in the loop the heads read the tokens of the bf16-autocast backbone (this CPU computes
bf16 natively) as float32; the tokens stage stores the same bf16 tokens as float16, which holds
every bf16 value of their range exactly, so here the two logits were equal (max difference 0.0,
measured 2026-12). Where the backbone runs in float32 (no native bf16), float16 storage rounds
the tokens (relative 5e-4): the test allows ``LOGIT_TOLERANCE`` and asks for the run's predicted
classes exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import NARROW_HEADS
from pipeline.errors import WeightsError
from pipeline.weights.loop import load_loop_backbone
from train.backbone_loop import heads_state
from train.config import ModelConfig, TrainConfig, TrainError
from train.models import build_model
from train.study import face_tuned, token_set_label
from train.synthetic import write_planted_store
from train.trainer import run_training

TINY = {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1), "mlp_ratio": 1.0}
LOGIT_TOLERANCE = 0.05
"""Largest difference allowed between the heads' logits on the run's in-loop tokens and on the
tokens the tokens stage extracts with the exported backbone (float16 storage, batch order)."""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("loop") / "store.zarr")
    write_planted_store(url, subjects=1, trials=4, segments_per_trial=1, crops="noise")
    return url


def loop_config(store: str, **fields) -> TrainConfig:  # noqa: ANN003
    return TrainConfig(**{"store": store, "labels": "deap2-valence", "folds": 4, "run_folds": [0],
                          "epochs": 1, "device": "cpu", "finetune_backbone": True,
                          "model": ModelConfig(**NARROW_HEADS), **fields})


def starting_weights(model_args: dict | None) -> dict[str, torch.Tensor]:
    start = load_loop_backbone("random:0", model_args=model_args)
    return {k: v.clone() for k, v in start.module.backbone.state_dict().items()}


def moved_by_gradient(before: torch.Tensor, after: torch.Tensor, lr: float, decay: float) -> bool:
    """AdamW's decoupled weight decay alone scales a tensor by (1 - lr x decay): a gradient step
    moves it further."""
    return float((after - before * (1 - lr * decay)).abs().max()) > 1e-6


@pytest.mark.parametrize("freeze", [0, 4])
def test_finetune_backbone_trains_every_stage_and_freeze_4_none(store: str, tmp_path: Path,
                                                                freeze: int) -> None:
    config = loop_config(store, backbone_args=TINY, freeze_stages=freeze,
                         model=ModelConfig(**NARROW_HEADS, token_dim=16 * 8))
    if freeze == 0:
        metrics = run_training(config, tmp_path / "run", progress=False,
                               backbone_loader=load_loop_backbone)
    else:  # the same through the command line (a tiny Swin only through --config)
        from flows.cli import app

        file = tmp_path / "tiny.json"
        file.write_text(json.dumps({"backbone_args": TINY, "run_folds": [0],
                                    "model": {**NARROW_HEADS, "token_dim": 16 * 8}}))
        result = CliRunner().invoke(app, [
            "train", "--store", store, "--out", str(tmp_path / "run"), "--config", str(file),
            "--labels", "deap2-valence", "--folds", "4", "--epochs", "1", "--device", "cpu",
            "--finetune-backbone", "--freeze-stages", "4", "--no-progress"])
        assert result.exit_code == 0, result.output
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    before = starting_weights(TINY)
    after = load_file(str(tmp_path / "run" / "backbone" / "fold0" / "model.safetensors"))
    assert set(after) == {k for k in before if not k.endswith(("relative_position_index", "attn_mask"))}
    moved = {k for k in after if after[k].is_floating_point()
             and moved_by_gradient(before[k], after[k], config.lr, config.weight_decay)}
    if freeze == 0:
        for key in ("patch_embed.proj.weight", "layers.0.blocks.0.attn.qkv.weight",
                    "layers.3.blocks.0.mlp.fc2.weight", "norm.weight"):
            assert key in moved, key
    else:
        assert all(torch.equal(before[k], after[k]) for k in after)
    assert metrics["backbone"]["freeze_stages"] == freeze
    assert metrics["backbone"]["base_weights"]["spec"] == "random:0"  # the store tokens' weights
    selected = load_file(str(tmp_path / "run" / "selected" / "fold0.safetensors"))
    assert all(torch.equal(selected[f"tokens.backbone.{k}"], v) for k, v in after.items())
    every = sum(p.numel() for p in load_loop_backbone("random:0", model_args=TINY).module.parameters())
    assert metrics["backbone"]["trainable_parameters"] == (0 if freeze == 4 else every)


def test_exported_backbone_is_a_weights_folder_whose_tokens_give_the_runs_predictions(
        tmp_path: Path) -> None:
    from pipeline.stages.tokens.extract import TokenExtractor, tokens_for_subject
    from pipeline.stages.tokens.module import CropTokens
    from pipeline.weights.swin_source import resolve_weights
    from store_schema.engine.store import FeatureStore

    store = str(tmp_path / "store.zarr")  # no tokens stage: crops are all a run in the loop needs
    write_planted_store(store, subjects=1, trials=2, segments_per_trial=1, crops="noise", tokens=False)
    run = tmp_path / "run"
    config = loop_config(store, folds=2, validation_fraction=0, freeze_stages=3,
                         backbone_weights="random:0")
    started: dict[str, torch.Tensor] = {}

    def loader(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the run's own, its start kept
        source = load_loop_backbone(*args, **kwargs)
        started.update({k: v.clone() for k, v in source.module.backbone.state_dict().items()})
        return source

    metrics = run_training(config, run, progress=False, backbone_loader=loader)
    assert metrics["backbone"]["trained"].startswith("backbone fine-tuned in the loop")
    assert (token_set_label(metrics), face_tuned(metrics)) == (
        "Swin fine-tuned in the loop from random:0 (random:0)", False)  # what a study table says
    folder = run / "backbone" / "fold0"
    card = json.loads((folder / "model_card.json").read_text())
    fold = json.loads((run / "folds" / "fold0.json").read_text())
    assert card["selected_epoch"] == fold["selected_epoch"] and card["base_weights"]["spec"] == "random:0"

    before, after = started, load_file(str(folder / "model.safetensors"))
    stage = lambda k: int(k.split(".")[1]) if k.startswith("layers.") else (-1 if k.startswith("patch") else 4)  # noqa: E731
    for key, value in after.items():
        if stage(key) < 3:
            assert torch.equal(before[key], value), key
    assert moved_by_gradient(before["layers.3.blocks.1.mlp.fc2.weight"],
                             after["layers.3.blocks.1.mlp.fc2.weight"], config.lr, config.weight_decay)

    source = resolve_weights(str(folder))  # --weights DIR: resolved, then loaded strictly
    assert source.kind == "timm_folder" and source.origin() == ("finetune", True)
    test = np.asarray(fold["test_positions"])
    crops = FeatureStore.open(store, mode="r").read(1, "faces", "crops")[test]
    extractor = TokenExtractor(weights=str(folder))
    arrays, extra = tokens_for_subject(crops=crops, extractor=extractor)
    tokens = arrays["tokens"]
    assert extra["weights"]["fingerprint"] == source.fingerprint

    heads = build_model(config.model, num_classes=2).eval()
    heads.load_state_dict(heads_state(load_file(str(run / "selected" / "fold0.safetensors"))))
    eeg = torch.from_numpy(FeatureStore.open(store, mode="r").read(1, "segment", "eeg")[test])
    loop = CropTokens(extractor.model, extractor.normalisation).eval()  # the run's forward
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        in_loop = loop(torch.from_numpy(crops).flatten(0, 1))
    with torch.no_grad():
        stored = heads(eeg, torch.from_numpy(tokens))
        recomputed = heads(eeg, in_loop.float().reshape(tokens.shape))
    assert stored.argmax(1).tolist() == fold["y_pred"]
    assert float((stored - recomputed).abs().max()) < LOGIT_TOLERANCE


def test_default_weights_that_cannot_be_found_again_ask_for_weights(tmp_path: Path) -> None:
    url = str(tmp_path / "store.zarr")
    write_planted_store(url, subjects=1, trials=2, segments_per_trial=1, weights_fingerprint="sha256:" + "0" * 64)
    with pytest.raises(WeightsError, match="cannot find again the Swin weights.*pass --weights"):
        run_training(loop_config(url), tmp_path / "run", progress=False, backbone_loader=load_loop_backbone)
    with pytest.raises(TrainError, match="no backbone loader"):
        run_training(loop_config(url), tmp_path / "run2", progress=False)
    from flows.cli import app

    result = CliRunner().invoke(app, ["train", "--store", url, "--out", str(tmp_path / "r3"),
                                      "--freeze-stages", "2"])
    assert result.exit_code == 2 and "freeze_stages only apply with finetune_backbone" in result.output
    with pytest.raises(ValueError, match="face_norm=whiten"):
        TrainConfig(finetune_backbone=True, model=ModelConfig(face_norm="whiten"))
