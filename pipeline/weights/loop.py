"""Swin-tiny trained in the loop with the heads (``milmer train --finetune-backbone``): its
starting weights, found the way the tokens stage finds them, and its export as a weights folder.

``train`` never imports ``pipeline``: the CLI hands :func:`load_loop_backbone` to
:func:`train.trainer.run_training` as its ``backbone_loader``; what the trainer uses of the
result is :class:`train.backbone_loop.LoopBackboneSource` (``module``, ``cpu_bf16``,
``provenance()``, ``export()``).

Starting weights: ``--weights SPEC`` (any spec :func:`~pipeline.weights.swin_source.resolve_weights`
takes), else the weights the store's tokens were made from, found again from the tokens
records (``random:N``; the recorded ``hf-hub:`` repo at its revision, path or spec, whichever
resolves to the recorded content fingerprint), else a one-line error asking for ``--weights``.

Export: ``model.safetensors`` (timm keys of the headless backbone, float32), ``config.json``
(timm's hub format with the normalisation, as ``milmer finetune`` writes it, no classes) and
``model_card.json`` (base weights and their provenance, the run, fold and selected epoch): a
folder ``--weights DIR`` accepts, whose tokens are the ones the run's heads were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import WeightsError
from pipeline.stages.tokens.module import CropTokens
from pipeline.stages.tokens.params import cpu_has_native_bf16
from pipeline.weights.finetune import outputs
from pipeline.weights.swin import load_backbone
from pipeline.weights.swin_source import MODEL_NAME, IMAGENET_NORMALISATION, WeightsSource, resolve_weights


@dataclass
class LoopBackbone:
    """The starting backbone of a run: :class:`CropTokens` on the CPU, in train mode."""

    module: CropTokens
    source: WeightsSource
    model_args: dict[str, Any] = field(default_factory=dict)
    """A smaller Swin (tests only; random weights only): the export is then no Swin-tiny."""
    cpu_bf16: bool = False
    """This CPU computes bf16 natively (the tokens stage's test): autocast the backbone on it."""

    def provenance(self) -> dict[str, Any]:
        """The starting weights' provenance (spec, repo, revision, hashes, origin, face_tuned)."""
        return {**self.source.provenance(), "model_args": dict(self.model_args) or None}

    def export(self, out: Path, module: CropTokens, card: dict[str, Any]) -> dict[str, Any]:
        """Write ``module``'s backbone to ``out`` as a weights folder with ``card`` (plus the
        base weights, normalisation, libraries and the weights' sha256); return the card."""
        out.mkdir(parents=True, exist_ok=True)
        state = module.backbone.state_dict()
        sha = outputs.save_model(out, state, classes=(), norm=module.normalisation,
                                 model_kwargs=self.model_args or None)
        full = {"model": MODEL_NAME, "model_args": dict(self.model_args),
                "base_weights": self.source.provenance(),
                "base_weights_described": self.source.describe(),
                "normalisation": module.normalisation.as_dict(), **card,
                "libraries": outputs.library_versions(), "weights_sha256": sha,
                "files": [outputs.MODEL_FILE, outputs.CONFIG_FILE, outputs.CARD_FILE]}
        outputs.write_json(out / outputs.CARD_FILE, full)
        return full


def recorded_spec(provenance: dict[str, Any] | None, fingerprint: str | None, *, where: str) -> str:
    """The spec of the weights a store's tokens were made from, found again: ``random:N`` as
    recorded, else the recorded hub repo at its revision, path or spec, the first whose content
    fingerprint is the recorded one. :class:`WeightsError` when none is."""
    if fingerprint and fingerprint.startswith("random:"):
        return fingerprint
    provenance = provenance or {}
    candidates = []
    if provenance.get("repo") and provenance.get("revision"):
        candidates.append(f"hf-hub:{provenance['repo']}@{provenance['revision']}")
    candidates += [c for c in (provenance.get("path"), provenance.get("spec")) if c]
    for candidate in dict.fromkeys(candidates):
        try:
            found = resolve_weights(candidate)
        except WeightsError:
            continue
        if fingerprint is None or found.fingerprint == fingerprint:
            return candidate
    said = f" (recorded as {provenance.get('spec')!r})" if provenance.get("spec") else ""
    raise WeightsError(
        f"{where}: cannot find again the Swin weights its tokens were made from "
        f"({fingerprint or 'not recorded'}{said}); pass --weights SPEC to say where the backbone "
        "trained in the loop starts")


def load_loop_backbone(weights: str | None, *, token_weights: dict[str, Any] | None = None,
                       token_fingerprint: str | None = None, where: str = "the store",
                       model_args: dict[str, Any] | None = None) -> LoopBackbone:
    """The starting backbone for ``weights`` (``None``: the tokens' own, :func:`recorded_spec`).
    ``model_args`` (tests): a smaller Swin from random weights, as ``milmer finetune``'s."""
    import timm
    import torch

    spec = weights if weights else recorded_spec(token_weights, token_fingerprint, where=where)
    source = resolve_weights(spec)
    if model_args:
        if not source.random:
            raise WeightsError(f"{spec}: a test configuration (backbone model args) starts from "
                               "random weights only")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(source.seed or 0))
            backbone = timm.create_model(MODEL_NAME, pretrained=False, num_classes=0, **model_args)
        normalisation = IMAGENET_NORMALISATION
    else:
        backbone, normalisation = load_backbone(source, model_name=MODEL_NAME)
    module = CropTokens(backbone.train(), normalisation)
    return LoopBackbone(module=module, source=source, model_args=dict(model_args or {}),
                        cpu_bf16=cpu_has_native_bf16())
