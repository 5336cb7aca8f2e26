"""The Swin-tiny weights of the token stage: where they are, their fingerprint, their keys.

Weights come from a local path only (nothing is downloaded), or are explicitly random:

* a timm checkpoint file (``.pth``/``.pt``/``.bin``/``.safetensors``): a state dict, possibly
  wrapped in ``{"state_dict": ...}``, ``{"model": ...}`` or ``{"model_state_dict": ...}``;
  Microsoft's original Swin layout (patch merging at the end of a stage) is converted too, and a
  single file holding Hugging Face keys goes through :func:`hf_swin_to_timm`;
* a Hugging Face Swin folder (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``,
  optionally ``preprocessor_config.json``), e.g. a face-emotion fine-tuned swin-tiny: the config
  is checked to be Swin-tiny, the keys are converted by :func:`hf_swin_to_timm` (both the
  transformers < 5 and >= 5 module names), the classifier is dropped;
* a timm hub folder (``config.json`` with ``architecture`` + ``model.safetensors`` /
  ``pytorch_model.bin``);
* ``"random"`` or ``"random:<seed>"``: timm's own initialisation under that seed, recorded as
  random (tokens made with it are marked so in the store).

Every load is ``strict=True``; a checkpoint that is not Swin-tiny fails with the counts and first
names of its missing, unexpected and mis-shaped keys, one holding NaN/inf tensors with the first
such tensor's name. :func:`check_weights` makes the same checks without building the model's
tensors, so a preprocessing run refuses bad weights before any work. The weights' *content* hash
(:func:`weights_fingerprint`) is a parameter of the stage, never their path.

Normalisation: ``(pixel * scale - mean) / std`` with the checkpoint's own values
(``preprocessor_config.json`` of a Hugging Face folder, ``pretrained_cfg`` of a timm folder),
ImageNet's otherwise; recorded in the stage's metadata.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import WeightsError
from pipeline.weights.swin_source import (
    HOW_TO_GIVE_WEIGHTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMAGENET_NORMALISATION,
    MODEL_NAME,
    Normalisation,
    WeightsSource,
    folder_weight_files,
    read_json,
    resolve_weights,
)

#: The Hugging Face SwinConfig of swin-tiny-patch4-window7-224 (the class defaults, so a field
#: missing from config.json means this value).
HF_SWIN_TINY_CONFIG: dict[str, Any] = {
    "image_size": 224,
    "patch_size": 4,
    "num_channels": 3,
    "embed_dim": 96,
    "depths": [2, 2, 6, 2],
    "num_heads": [3, 6, 12, 24],
    "window_size": 7,
    "mlp_ratio": 4.0,
    "qkv_bias": True,
    "hidden_act": "gelu",
    "use_absolute_embeddings": False,
    "layer_norm_eps": 1e-5,
}



def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors or torch-pickle file, unwrapped from its checkpoint."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path), device="cpu")
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one message
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"{path}: cannot read the checkpoint ({type(err).__name__}: {first}); "
                           "save the weights as a plain state dict (torch.save(model.state_dict()) "
                           "or safetensors)") from None
    for _ in range(3):
        if isinstance(raw, Mapping):
            inner = next((raw[k] for k in ("state_dict", "model", "model_state_dict")
                          if isinstance(raw.get(k), Mapping)), None)
            if inner is not None:
                raw = inner
                continue
        break
    if not isinstance(raw, Mapping):
        raise WeightsError(f"{path}: holds a {type(raw).__name__}, not a state dict")
    state = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise WeightsError(f"{path}: holds no tensors (keys: {sorted(map(str, raw))[:5]})")
    return state


# -- key conversion ----------------------------------------------------------------------------

_HF_BLOCK = re.compile(r"^encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)$")
_HF_DOWNSAMPLE = re.compile(r"^encoder\.layers\.(\d+)\.downsample\.(.+)$")
_HF_QKV = re.compile(r"^attention\.(?:self\.(query|key|value)|(q|k|v)_proj)\.(weight|bias)$")
_HF_BLOCK_RENAMES: tuple[tuple[str, str], ...] = (
    # (HF name inside a block, transformers < 5 and >= 5) -> timm name inside a block
    ("layernorm_before.", "norm1."),
    ("layernorm_after.", "norm2."),
    ("attention.self.relative_position_bias_table", "attn.relative_position_bias_table"),
    ("attention.relative_position_bias.relative_position_bias_table", "attn.relative_position_bias_table"),
    ("attention.output.dense.", "attn.proj."),
    ("attention.o_proj.", "attn.proj."),
    ("intermediate.dense.", "mlp.fc1."),
    ("mlp.fc1.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
    ("mlp.fc2.", "mlp.fc2."),
)
_HF_TOP_RENAMES: tuple[tuple[str, str], ...] = (
    ("embeddings.patch_embeddings.projection.", "patch_embed.proj."),
    ("embeddings.norm.", "patch_embed.norm."),
    ("layernorm.", "norm."),
)
_HF_SKIP = re.compile(
    r"(^classifier\.|^decoder\.|^embeddings\.mask_token$|relative_position_index$)")
"""Heads (image classification, masked image modelling) and buffers timm recomputes."""


def hf_swin_to_timm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a Hugging Face Swin state dict (``SwinModel`` or ``SwinForImageClassification``,
    transformers < 5 or >= 5 module names) to timm ``SwinTransformer`` keys.

    Pure: tensors are not copied except q/k/v, which are concatenated into timm's ``attn.qkv``.
    Drops ``swin.``; skips ``classifier.*`` (and masked-image-modelling heads) and
    ``relative_position_index``; HF's patch merging at the end of stage ``i`` becomes timm's
    ``layers.{i+1}.downsample``. Keys it does not know are returned unchanged, so a strict load
    reports them as unexpected.
    """
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    leftovers: dict[tuple[str, str], dict[str, str]] = {}
    for key, value in state_dict.items():
        name = key[len("swin."):] if key.startswith("swin.") else key
        if _HF_SKIP.search(name):
            continue
        if match := _HF_BLOCK.match(name):
            stage, block, rest = match.groups()
            prefix = f"layers.{stage}.blocks.{block}."
            if part := _HF_QKV.match(rest):
                which = (part.group(1) or part.group(2))[0]  # q, k or v
                qkv.setdefault((prefix, part.group(3)), {})[which] = value
                leftovers.setdefault((prefix, part.group(3)), {})[which] = key
                continue
            out[prefix + _rename(rest, _HF_BLOCK_RENAMES)] = value
        elif match := _HF_DOWNSAMPLE.match(name):
            stage, rest = match.groups()
            out[f"layers.{int(stage) + 1}.downsample.{rest}"] = value
        else:
            out[_rename(name, _HF_TOP_RENAMES)] = value
    for (prefix, kind), parts in qkv.items():
        if set(parts) == {"q", "k", "v"}:
            out[f"{prefix}attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
        else:  # incomplete: keep the pieces under their own names, the strict load names them
            for which, tensor in parts.items():
                out[leftovers[(prefix, kind)][which]] = tensor
    return out


def _rename(name: str, table: tuple[tuple[str, str], ...]) -> str:
    for old, new in table:
        if name.startswith(old):
            return new + name[len(old):]
    return name


_OLD_DOWNSAMPLE = re.compile(r"^layers\.(\d+)\.downsample\.")


def timm_swin_filter(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Clean a timm-keyed (or original Microsoft) Swin state dict for a headless timm model.

    Strips a ``module.`` prefix (DistributedDataParallel); skips ``head.*``,
    ``relative_position_index`` and ``attn_mask`` buffers; moves Microsoft's end-of-stage patch
    merging (``layers.0.downsample`` present) to timm's start-of-next-stage. Unlike timm's own
    ``checkpoint_filter_fn`` it never resizes tensors: a different window or patch size must fail.
    """
    items = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}
    old_layout = "layers.0.downsample.reduction.weight" in items
    out: dict[str, torch.Tensor] = {}
    for key, value in items.items():
        if key.startswith("head.") or key.endswith(("relative_position_index", "attn_mask")):
            continue
        if old_layout:
            key = _OLD_DOWNSAMPLE.sub(lambda m: f"layers.{int(m.group(1)) + 1}.downsample.", key)
        out[key] = value
    return out


def looks_like_hf_swin(state_dict: Mapping[str, Any]) -> bool:
    return any(k.startswith(("swin.embeddings.", "swin.encoder.", "embeddings.patch_embeddings.",
                             "encoder.layers.")) for k in state_dict)


def check_hf_swin_config(config: Mapping[str, Any], *, path: Path | str) -> None:
    """Refuse a Hugging Face config that is not Swin (v1) tiny, patch 4, window 7, 224.

    A field missing from ``config.json`` takes transformers' default, which is swin-tiny's value.
    Every mismatching field is named at once.
    """
    model_type = config.get("model_type")
    if model_type != "swin":
        raise WeightsError(
            f"{path}: model_type {model_type!r}: only Hugging Face Swin (v1) checkpoints "
            f"(model_type 'swin') can be converted to {MODEL_NAME}")
    wrong = [f"{field} {config[field]!r} (need {want!r})" for field, want in HF_SWIN_TINY_CONFIG.items()
             if field in config and not _same_setting(config[field], want)]
    if wrong:
        raise WeightsError(f"{path}: not a Swin-tiny ({MODEL_NAME}) checkpoint: "
                           + "; ".join(wrong) + f". {HOW_TO_GIVE_WEIGHTS}")


def _same_setting(have: Any, want: Any) -> bool:
    if isinstance(want, list):
        return isinstance(have, (list, tuple)) and list(have) == want
    if isinstance(want, bool) or isinstance(want, str):
        return have == want
    numeric = isinstance(have, (int, float)) and not isinstance(have, bool)
    return numeric and abs(have - want) <= 1e-9 * abs(want)


def _check_keys(model: torch.nn.Module, state: Mapping[str, torch.Tensor], *, where: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k} {tuple(state[k].shape)} (need {tuple(v.shape)})"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or mis_shaped):
        return
    parts = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                        ("mis-shaped tensors", mis_shaped)):
        if keys:
            parts.append(f"{len(keys)} {label}, first: {keys[0]}")
    raise WeightsError(f"{where}: not a Swin-tiny checkpoint ({MODEL_NAME}): " + "; ".join(parts)
                       + f". {HOW_TO_GIVE_WEIGHTS}")


def _normalisation_from_hf(folder: Path) -> Normalisation:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return IMAGENET_NORMALISATION
    cfg = read_json(path)
    scale = float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0
    if cfg.get("do_normalize", True):
        mean, std = cfg.get("image_mean", IMAGENET_MEAN), cfg.get("image_std", IMAGENET_STD)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return _normalisation(scale, mean, std, origin=str(path.name), where=path)


def _normalisation(scale: float, mean: Any, std: Any, *, origin: str, where: Path) -> Normalisation:
    try:
        mean_t = tuple(float(v) for v in mean)
        std_t = tuple(float(v) for v in std)
    except (TypeError, ValueError):
        raise WeightsError(f"{where}: mean/std must be 3 numbers, got {mean!r} / {std!r}") from None
    if len(mean_t) != 3 or len(std_t) != 3 or min(std_t) <= 0:
        raise WeightsError(f"{where}: mean/std must be 3 numbers (std > 0), got {mean!r} / {std!r}")
    return Normalisation(scale=scale, mean=mean_t, std=std_t, origin=origin)  # type: ignore[arg-type]


def load_backbone(
    source: WeightsSource, *, model_name: str = MODEL_NAME
) -> tuple[torch.nn.Module, Normalisation]:
    """The headless timm backbone with ``source``'s weights (strict), on CPU, in eval mode."""
    import timm

    if source.random:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(source.seed or 0))
            model = timm.create_model(model_name, pretrained=False, num_classes=0)
        return model.eval(), IMAGENET_NORMALISATION
    model = timm.create_model(model_name, pretrained=False, num_classes=0)
    state, normalisation = _checked_state(source, model, model_name=model_name)
    model.load_state_dict(state, strict=True)
    return model.eval(), normalisation


def check_weights(weights: str | Path | None, *, model_name: str = MODEL_NAME) -> WeightsSource:
    """Refuse weights that cannot give Swin-tiny tokens, before any work is done.

    Reads the checkpoint and compares its keys and tensor shapes with the model's (built on the
    ``meta`` device: no memory, no initialisation) and checks every tensor is finite, exactly as
    :func:`load_backbone` does. Raises :class:`WeightsError` naming the file and the problem;
    random weights pass.
    """
    import timm

    source = resolve_weights(weights)
    if source.random:
        return source
    with torch.device("meta"):
        model = timm.create_model(model_name, pretrained=False, num_classes=0)
    _checked_state(source, model, model_name=model_name)
    return source


def _checked_state(
    source: WeightsSource, model: torch.nn.Module, *, model_name: str
) -> tuple[dict[str, torch.Tensor], Normalisation]:
    """``source``'s state dict in timm keys, checked against ``model``, and its normalisation."""
    assert source.path is not None
    normalisation = IMAGENET_NORMALISATION
    state: dict[str, torch.Tensor] = {}
    if source.kind == "hf_folder":
        check_hf_swin_config(read_json(source.path / "config.json"), path=source.path / "config.json")
        for file in folder_weight_files(source.path):
            state.update(_read_state_dict(file))
        state = hf_swin_to_timm(state)
        normalisation = _normalisation_from_hf(source.path)
    elif source.kind == "timm_folder":
        config = read_json(source.path / "config.json")
        if config.get("architecture") != model_name:
            raise WeightsError(f"{source.path / 'config.json'}: architecture "
                               f"{config.get('architecture')!r}, need {model_name!r}. {HOW_TO_GIVE_WEIGHTS}")
        for file in folder_weight_files(source.path):
            state.update(_read_state_dict(file))
        state = timm_swin_filter(state)
        pretrained = config.get("pretrained_cfg") or {}
        if "mean" in pretrained or "std" in pretrained:
            normalisation = _normalisation(1 / 255, pretrained.get("mean", IMAGENET_MEAN),
                                           pretrained.get("std", IMAGENET_STD),
                                           origin="config.json pretrained_cfg", where=source.path)
    else:
        state = _read_state_dict(source.path)
        state = hf_swin_to_timm(state) if looks_like_hf_swin(state) else timm_swin_filter(state)
    _check_keys(model, state, where=str(source.path))
    _check_finite_state(state, where=str(source.path))
    return state, normalisation


def _check_finite_state(state: Mapping[str, torch.Tensor], *, where: str) -> None:
    """NaN/inf weights would give NaN tokens for every crop: refuse them by name."""
    bad = {k: int((~torch.isfinite(v)).sum()) for k, v in state.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())}
    if bad:
        first = next(iter(bad))
        raise WeightsError(f"{where}: {len(bad)} tensor(s) hold NaN/inf values, first: {first} "
                           f"({bad[first]} value(s)); the checkpoint is corrupt. {HOW_TO_GIVE_WEIGHTS}")
