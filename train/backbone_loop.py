"""Swin-tiny trained in the loop with the heads (``finetune_backbone``, the paper's code): the face
path reads the stored 224x224 crops and turns them into tokens with gradients, every step.

``train`` never imports ``pipeline``: the starting backbone comes from a ``backbone_loader`` the
caller hands to :func:`train.trainer.run_training` (the CLI passes
:func:`pipeline.weights.loop.load_loop_backbone`), which returns a :class:`LoopBackboneSource`:
its ``module`` turns (N, 224, 224, 3) uint8 crops into (N, 49, 768) tokens with the tokens
stage's own normalisation and layout (:class:`pipeline.stages.tokens.module.CropTokens`), so
tokens extracted later with the exported weights feed the same heads.

Per fold (:class:`BackboneLoop`): a fresh copy of the starting backbone, the patch embedding and
the first ``freeze_stages`` stages frozen (eval mode, no gradient), timm's gradient
checkpointing on request; one AdamW over the heads and the trainable backbone (two groups: ``lr``
and ``backbone_lr``, the same cosine); batches of ``micro_batch`` segments through the backbone
with gradients accumulated (:meth:`train.trainer.Trainer.train_epoch`); the backbone under
autocast (bf16 or fp16 on CUDA with ``amp``, bf16 on a CPU that computes it natively). The
selected epoch's weights (heads and backbone, ``selected/fold<F>.safetensors``, keys ``heads.*``
and ``tokens.backbone.*``) are the ones exported to ``RUN_DIR/backbone/fold<F>/``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from train.config import TrainConfig, TrainError
from train.models import HeadModel, count_parameters, model_class

LOOP_NOTE = ("backbone fine-tuned in the loop: Swin-tiny trained with the heads from the stored "
             "crops (the paper's code), not frozen cached tokens")


class LoopBackboneSource(Protocol):
    """The starting backbone, as a ``backbone_loader`` returns it."""

    module: nn.Module
    """crops (N, 224, 224, 3) uint8 -> tokens (N, 49, 768); its ``backbone`` is a timm Swin."""
    cpu_bf16: bool
    """This CPU computes bf16 natively."""

    def provenance(self) -> dict[str, Any]: ...

    def export(self, out: Path, module: nn.Module, card: dict[str, Any]) -> dict[str, Any]: ...


BackboneLoader = Callable[..., LoopBackboneSource]
"""``loader(weights, *, token_weights, token_fingerprint, where, model_args)``: ``weights`` the
spec asked for (``None``: the store tokens' own, from their provenance and fingerprint)."""


def frozen_modules(tokens: nn.Module, stages: int) -> list[nn.Module]:
    """The patch embedding and the first ``stages`` Swin stages of ``tokens.backbone`` (all of
    it, final norm included, when ``stages`` covers every stage)."""
    backbone = tokens.backbone
    if stages >= len(backbone.layers):
        return [backbone]
    return [backbone.patch_embed, *list(backbone.layers)[:stages]] if stages >= 1 else []


def freeze(tokens: nn.Module, stages: int) -> list[nn.Module]:
    """Freeze :func:`frozen_modules` (no gradient); return them."""
    frozen = frozen_modules(tokens, stages)
    for module in frozen:
        module.requires_grad_(False)
    return frozen


class LoopModel(HeadModel):
    """Crops (B, F, 224, 224, 3) uint8 -> tokens through the trained backbone -> the heads."""

    def __init__(self, heads: HeadModel, tokens: nn.Module, *, frozen: list[nn.Module],
                 autocast: Callable[[], Any]) -> None:
        super().__init__()
        self.heads = heads
        self.tokens = tokens
        self.uses_eeg, self.uses_face = heads.uses_eeg, heads.uses_face  # type: ignore[misc]
        self._frozen = frozen
        self._autocast = autocast

    def train(self, mode: bool = True) -> LoopModel:
        super().train(mode)
        for module in self._frozen:  # a frozen stage computes as the tokens stage does
            module.eval()
        return self

    def face_tokens(self, crops: Tensor) -> Tensor:
        """(B, F, 224, 224, 3) uint8 -> (B, F, 49, 768) float32 tokens."""
        b, f = crops.shape[:2]
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.tokens.parameters())
        with self._autocast(), torch.set_grad_enabled(grad):
            tokens = self.tokens(crops.flatten(0, 1))
        return tokens.float().reshape(b, f, *tokens.shape[1:])

    def fit_statistics(self, stats: Any) -> None:
        self.heads.fit_statistics(stats)

    def frame_scores(self, face: Tensor, frame_mask: Tensor | None = None) -> Tensor | None:
        return self.heads.frame_scores(self.face_tokens(face), frame_mask)

    @torch.no_grad()
    def frame_picks(self, face: Tensor, frame_mask: Tensor | None = None) -> Tensor | None:
        return self.heads.frame_picks(self.face_tokens(face), frame_mask)

    def auxiliary_loss(self) -> Tensor | None:
        return self.heads.auxiliary_loss()

    def forward(self, eeg: Tensor | None = None, face: Tensor | None = None,
                frame_mask: Tensor | None = None) -> Tensor:
        return self.heads(eeg, None if face is None else self.face_tokens(face), frame_mask)

    def param_dtype(self) -> torch.dtype:
        return self.heads.param_dtype()


def heads_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The heads' own state dict out of a :class:`LoopModel`'s (``heads.*`` keys, prefix off):
    the heads of a run trained in the loop, to apply to tokens extracted with its backbone."""
    return {k[len("heads."):]: v for k, v in state.items() if k.startswith("heads.")}


class BackboneLoop:
    """What a run with the backbone in the loop shares between its folds."""

    def __init__(self, config: TrainConfig, loader: BackboneLoader | None, *, device: torch.device,
                 token_weights: dict[str, Any] | None, token_fingerprint: str | None,
                 where: str) -> None:
        if loader is None:
            raise TrainError("finetune_backbone: no backbone loader was given to run_training "
                             "(the CLI passes pipeline.weights.loop.load_loop_backbone)")
        if not model_class(config.model.kind).uses_face:
            raise TrainError(f"--finetune-backbone: model {config.model.kind} reads no faces, so it "
                             "has no backbone to tune; use fusion, concat, deepcca or face")
        self.config, self.device = config, device
        self.source = loader(config.backbone_weights, token_weights=token_weights,
                             token_fingerprint=token_fingerprint, where=where,
                             model_args=config.backbone_args or None)
        self.micro_batch = config.micro_batch or (config.batch_size if device.type == "cuda" else 2)
        self.dtype: torch.dtype | None = None
        if config.backbone_precision == "auto":
            if device.type == "cuda" and config.amp:
                self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            elif device.type == "cpu" and self.source.cpu_bf16:
                self.dtype = torch.bfloat16

    @property
    def precision(self) -> str:
        return {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}.get(self.dtype, "float32")  # type: ignore[arg-type]

    def autocast(self) -> Any:
        if self.dtype is None:  # float32 even inside the heads' autocast
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.dtype)

    def wrap(self, heads: HeadModel) -> LoopModel:
        """``heads`` behind a fresh copy of the starting backbone, on the run's device."""
        tokens = copy.deepcopy(self.source.module)
        tokens.backbone.set_grad_checkpointing(self.config.grad_checkpointing)
        frozen = freeze(tokens, self.config.freeze_stages)
        tokens = tokens.to(self.device, memory_format=torch.channels_last)
        return LoopModel(heads.to(self.device), tokens, frozen=frozen, autocast=self.autocast).train()

    def optimizer(self, model: LoopModel) -> torch.optim.Optimizer:
        """One AdamW: the heads at ``lr``, the trainable backbone at ``backbone_lr`` (default
        ``lr``); each group keeps its ``base_lr`` for the cosine."""
        lr = self.config.lr
        backbone_lr = self.config.backbone_lr or lr
        groups = [{"params": list(model.heads.parameters()), "lr": lr, "base_lr": lr}]
        trainable = [p for p in model.tokens.parameters() if p.requires_grad]
        if trainable:
            groups.append({"params": trainable, "lr": backbone_lr, "base_lr": backbone_lr})
        return torch.optim.AdamW(groups, lr=lr, weight_decay=self.config.weight_decay)

    def trainable_parameters(self) -> int:
        frozen = frozen_modules(self.source.module, self.config.freeze_stages)
        return (count_parameters(self.source.module, trainable_only=False)
                - sum(count_parameters(m, trainable_only=False) for m in frozen))

    def export(self, out: Path, *, fold: int, model: LoopModel, selected_epoch: int,
               validation: dict[str, Any]) -> None:
        """Write the backbone ``model`` holds (the selected epoch's) to ``out/backbone/fold<F>``."""
        self.source.export(out / "backbone" / f"fold{fold}", model.tokens, {
            "trained": LOOP_NOTE, "run": str(out), "store": self.config.store, "fold": fold,
            "selected_epoch": selected_epoch, "validation": validation,
            "selection": self.config.selection, "epochs": self.config.epochs,
            "settings": self.settings(),
            "heads": f"selected/fold{fold}.safetensors (keys heads.*; train.backbone_loop.heads_state)"})

    def settings(self) -> dict[str, Any]:
        c = self.config
        return {"lr": c.lr, "backbone_lr": c.backbone_lr or c.lr, "freeze_stages": c.freeze_stages,
                "grad_checkpointing": c.grad_checkpointing, "micro_batch": self.micro_batch,
                "batch_size": c.batch_size, "precision": self.precision,
                "weight_decay": c.weight_decay, "model_args": c.backbone_args or None}

    def metrics(self, out: Path, folds: list[int], store_token_weights: dict[str, Any] | None
                ) -> dict[str, Any]:
        """Fields of ``metrics.json``: what was trained in the loop, from what, and where the
        tuned weights are; ``token_weights`` says the tokens were the loop's (origin ``loop``)."""
        base = self.source.provenance()
        exported = []
        for fold in folds:
            card_path = out / "backbone" / f"fold{fold}" / "model_card.json"
            if card_path.is_file():
                card = json.loads(card_path.read_text())
                exported.append({"fold": fold, "path": str(card_path.parent.relative_to(out)),
                                 "selected_epoch": card.get("selected_epoch"),
                                 "weights_sha256": card.get("weights_sha256")})
        described = base.get("spec") or base.get("fingerprint")
        return {
            "backbone": {"trained": f"{LOOP_NOTE}; from {described}", "base_weights": base,
                         **self.settings(), "trainable_parameters": self.trainable_parameters(),
                         "exported": exported},
            "weights_fingerprint": base.get("fingerprint"),
            "random_weights": base.get("kind") == "random",
            "token_weights": {"origin": "loop", "tuned_in_loop": True, "spec": base.get("spec"),
                              "fingerprint": base.get("fingerprint"),
                              "face_tuned": base.get("face_tuned"),
                              "model_card": {"base_weights": base}},
            "store_token_weights": store_token_weights,
        }
