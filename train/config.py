"""Training and model settings: every default is the paper's (README of liangyubuaa/Milmer and
DESIGN.md "Model spec"), every one is a field.

A run's resolved :class:`TrainConfig` is written to ``RUN_DIR/config.json``; ``milmer train
--config FILE`` reads the same shape (any subset of fields) or the name of a preset from
:mod:`train.ablations`; command-line flags win over the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from store_schema.engine.credentials import refuse_url_password
from store_schema.errors import MilmerError
from store_schema.contract.labels import Deap3Boundaries, LabelScheme
from store_schema.contract.layout import FRAMES_PER_SEGMENT, N_EEG_CHANNELS, N_TOKENS, TOKEN_DIM

ModelKind = Literal["fusion", "concat", "deepcca", "eeg", "face"]
MilMode = Literal["topk", "all", "none", "mean", "amil"]
EegTokenizerKind = Literal["raw", "log_power", "de", "band_maps"]
FaceNorm = Literal["none", "standardize", "whiten"]
BalanceMode = Literal["cross_attention", "none", "mlp"]
Protocol = Literal["trial", "segment", "loso"]

EEG_WINDOW = 384
"""Samples per EEG segment (3 s at 128 Hz); the EEG tokenizer's input width."""


class TrainError(MilmerError):
    """Bad training settings or a run folder that cannot be used as asked."""


class ModelConfig(BaseModel):
    """The heads' hyper-parameters, as a user sets them (CLI flags, JSON configs, presets):
    ``kind`` names a registered model (:func:`train.models.model_kinds`), and
    :func:`train.models.build_model` passes it the other fields its constructor takes (a model's
    constructor arguments are its config, timm style; a field it does not take is unused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ModelKind = Field("fusion", description=(
        "fusion: transformer over EEG + face tokens (Milmer); concat: pooled EEG and face vectors "
        "concatenated + MLP; deepcca: Deep CCA (Andrew et al. 2013), two encoders trained with the "
        "CCA objective and a linear classifier on their projections; eeg / face: the transformer "
        "over one modality"))
    d_model: int = Field(768, ge=8, description="width of every token inside the heads")
    token_dim: int = Field(TOKEN_DIM, description="width of the cached Swin tokens (768)")
    n_frames: int = Field(FRAMES_PER_SEGMENT, ge=1, description="face frames (MIL instances) per segment")
    n_face_tokens: int = Field(N_TOKENS, ge=1, description="Swin tokens per frame (7x7)")
    eeg_channels: int = Field(N_EEG_CHANNELS, ge=1, description="EEG tokens (one per channel)")
    eeg_samples: int = Field(EEG_WINDOW, ge=1, description="samples per channel token")
    eeg_sfreq: float = Field(128.0, gt=0, description="sampling rate of the stored EEG windows (Hz)")
    eeg_tokenizer: EegTokenizerKind = Field("raw", description=(
        "raw: the paper's LayerNorm(384) -> Linear -> ReLU on samples; log_power: log power in "
        "2 Hz bins 1-45 Hz; de: differential entropy (log band power) in δ θ α β γ (both one "
        "token per channel); band_maps: the log_power features as one token per 2 Hz band, its "
        "32 channels' powers (asymmetries between channels are linear in one token); spectral "
        "ones are Hann-windowed, standardised with training-fold statistics, then Linear"))
    face_norm: FaceNorm = Field("none", description=(
        "none: the cached tokens as Swin gave them (the paper, which fine-tunes Swin); "
        "standardize: minus the mean and over the std of the training fold's frames, per token "
        "position and channel; whiten: minus the per-position mean, then times the inverse "
        "square root of the channels' covariance (ZCA, ridge 0.01 x the mean eigenvalue). "
        "Statistics come from the fit rows only and are kept in checkpoints. Frozen random-weight "
        "tokens have an effective rank of ~5 of 768 (measured): what every face shares swamps "
        "the expression, and a head fits it in a few epochs only once whitened"))
    mil: MilMode = Field("topk", description=(
        "topk: attention top-K frames weighted by their scores; all: every frame's tokens, no "
        "selection (Table 6's multiple picture); none: first frame; mean: mean of all frames; "
        "amil: attention-weighted sum of all frames (Ilse et al. 2018)"))
    top_k: int = Field(3, ge=1, description="frames kept by mil=topk")
    mil_hidden: int = Field(128, ge=1, description="hidden width of the MIL scorer (V in eq. 3)")
    mil_scorer_input: Literal["mean", "tokens", "deviation"] = Field("mean", description=(
        "what the MIL scorer sees of a frame: mean: its mean token (x_q of eq. 3, pooled); "
        "tokens: every token through V and tanh, then averaged, so a cue in a few patches "
        "(the mouth) is not averaged away first; deviation: as tokens, each token minus the "
        "same position's mean over the segment's frames, so what the frames share (the face, "
        "the light) cancels and a short expression stands out"))
    topk_gradient: Literal["kept", "all"] = Field("kept", description=(
        "mil=topk, backward pass only (the weights are K a_q / Σ_kept a either way): kept: the "
        "gradient reaches the kept frames' scores relative to each other, never a frame left "
        "out, so a frame enters the top K only when the kept ones fall below it by chance; "
        "all: Σ_kept a is held constant, so a kept frame's weight follows its softmax score, "
        "whose normaliser runs over every frame: lowering a useless kept frame raises the "
        "others"))
    mask_undetected: bool = Field(False, description=(
        "exclude frames without a face detection from MIL scoring (off in the paper)"))
    balance: BalanceMode = Field("cross_attention", description=(
        "cross_attention: N learnable queries attend to the selected tokens; none: pass the "
        "selected tokens; mlp: per-token MLP d -> mlp_hidden -> d"))
    n_queries: int = Field(64, ge=1, description="learnable queries of the cross-attention balancer")
    balance_heads: int = Field(12, ge=1, description="heads of the cross-attention balancer")
    mlp_hidden: int = Field(3072, ge=1, description="hidden width of the MLP balancer")
    fusion_layers: int = Field(2, ge=1)
    fusion_heads: int = Field(12, ge=1)
    fusion_ff: int = Field(2048, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1, description="transformer and balancer dropout")
    cls_dropout: float = Field(0.1, ge=0, lt=1)
    modality_dropout: float = Field(0.0, ge=0, le=0.5, description=(
        "fusion and concat, training only: each segment loses its EEG tokens with this "
        "probability and, with the same probability, its face tokens instead (never both; "
        "ModDrop, Neverova et al. 2015). 0: off (the paper). The dropped tokens are masked out "
        "of the fusion transformer's attention (concat: their pooled vector is zeroed), so each "
        "path must classify alone and neither can carry the fit by itself: on a few hundred "
        "trials the EEG band powers identify each training trial, and a joint model fits the "
        "labels through them instead of the face"))
    position_embeddings: bool = Field(True, description="learned position embeddings per modality")
    modality_embeddings: bool = Field(True, description="token-type (modality) embeddings")
    concat_hidden: int = Field(768, ge=1, description="hidden width of the concat baseline's MLP")
    cca_dim: int = Field(8, ge=1, description="deepcca: output width of each encoder (keep below the batch size)")
    cca_hidden: int = Field(256, ge=1, description="deepcca: hidden width of the two encoder MLPs")
    cca_reg: float = Field(1e-3, gt=0, description="deepcca: ridge added to each view's covariance")
    cca_weight: float = Field(1.0, gt=0, description="deepcca: weight of the CCA term in the loss")

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.mil == "topk" and self.top_k > self.n_frames:
            raise ValueError(f"top_k={self.top_k} exceeds n_frames={self.n_frames}")
        for name in ("fusion_heads", "balance_heads"):
            heads = getattr(self, name)
            if self.d_model % heads:
                raise ValueError(f"d_model={self.d_model} is not divisible by {name}={heads}")
        return self


class TrainConfig(BaseModel):
    """One training run: data, protocol, optimisation and the model."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    store: str = Field("", description="feature store folder or fsspec URL")

    @field_validator("store")
    @classmethod
    def _store_url_without_password(cls, value: str) -> str:
        """The resolved config is written to config.json and logged by trackers: no secret in it."""
        return refuse_url_password(value)
    subjects: list[int] | None = Field(None, description="subjects to use (default: all usable)")
    labels: LabelScheme = LabelScheme.deap4
    deap3: Deap3Boundaries = Deap3Boundaries()
    protocol: Protocol = Field("trial", description=(
        "trial: per-subject k-fold over whole trials; segment: per-subject k-fold over segments "
        "(leaks neighbouring windows of a trial); loso: leave one subject out"))
    folds: int = Field(5, ge=2, description="k of the trial and segment protocols")
    per_subject: bool = Field(False, description=(
        "one model per subject (the paper's subject-dependent setting), each trained and tested "
        "on its own subject's folds in RUN_DIR/sNN/; metrics.json gives the mean ± std over "
        "subjects and each subject's figures. trial or segment protocol only (loso holds a "
        "whole subject out)"))
    run_folds: list[int] | None = Field(None, description="run only these folds (0-based)")
    splits: str | None = Field(None, description=(
        "a split manifest (RUN_DIR/splits.json of an earlier run, train.splits): train, "
        "validate and test on its folds exactly; its protocol and k must be the run's"))
    keep_faceless: bool = Field(False, description=(
        "models that read faces keep segments whose face video is missing (their black crops "
        "become tokens: this contaminates training and test with faces that are not there). By "
        "default they are dropped, and so are subjects without any video; metrics.json lists "
        "them. EEG-only models always keep every segment"))
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(14, ge=1)
    lr: float = Field(1e-4, gt=0)
    lr_final_factor: float = Field(0.1, gt=0, le=1, description="cosine decay ends at lr x this")
    weight_decay: float = Field(0.01, ge=0, description="AdamW's default")
    seed: int = 0
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    amp: bool = Field(True, description="mixed precision on CUDA (never on CPU unless cpu_bf16)")
    cpu_bf16: bool = Field(False, description=(
        "bf16 autocast on a CPU: the paper's heads step 1.6x faster on an AVX512-BF16 EPYC, narrow "
        "heads (d_model 64) gain nothing (benchmarks/train_step.py); off by default, since it "
        "changes the numbers and is emulated (slower) on CPUs without native bf16"))
    in_memory: Literal["auto", "always", "never"] = Field("auto", description=(
        "load the selected segments into memory once (auto: when they fit in memory_fraction of "
        "the available memory), else stream whole chunks from the store with prefetching"))
    memory_fraction: float = Field(0.5, gt=0, le=1)
    prefetch_batches: int = Field(4, ge=1)
    read_workers: int = Field(0, ge=0, description=(
        "processes reading token batches when streaming; 0 (default): one background thread of "
        "the training process, the faster choice on the 2-core machines measured. Workers come "
        "from a fork server: a script calling the trainer with workers needs the usual "
        "`if __name__ == '__main__':` guard"))
    validation_fraction: float = Field(0.2, ge=0, lt=1, description=(
        "share of each training fold's trials held out for validation (whole trials, per class, "
        "drawn by seed; at least one trial of a class that has two or more); the epoch is chosen "
        "on it. 0: no validation, the last epoch is kept"))
    selection: Literal["val_accuracy", "val_loss"] = Field("val_accuracy", description=(
        "how the epoch is chosen on validation: highest accuracy (ties: lower loss, then the "
        "earlier epoch) or lowest loss"))
    early_stopping: int | None = Field(None, ge=1, description=(
        "patience in epochs: a fold stops once this many epochs have passed since the epoch "
        "`selection` would choose (validation accuracy by default, ties to the lower loss), so "
        "the chosen epoch is the one a full run chooses among the epochs run. None (default): "
        "every epoch runs (the paper's 100). Needs validation (validation_fraction > 0)"))
    eval_every: int = Field(1, ge=1, description=(
        "evaluate on validation every N epochs (and after the last): the candidate epochs"))
    checkpoint_every: int = Field(1, ge=1)
    finetune_backbone: bool = Field(False, description=(
        "train Swin-tiny in the loop with the heads (the paper's code): the face path reads the "
        "stored 224x224 crops, not the cached tokens, and the tuned backbone of each fold (its "
        "selected epoch) is written to RUN_DIR/backbone/fold<F>/ as a --weights folder"))
    backbone_weights: str | None = Field(None, description=(
        "--finetune-backbone: starting weights (random[:SEED], a path, hf-hub:ORG/NAME[@REV], "
        "imagenet, face-emotion); default: the weights the store's tokens were made from"))
    backbone_lr: float | None = Field(None, gt=0, description=(
        "learning rate of the backbone's parameter group (same cosine as the heads); default: lr, "
        "the paper's one AdamW over everything at 1e-4"))
    freeze_stages: int = Field(0, ge=0, le=4, description=(
        "freeze the patch embedding and the first N Swin stages (eval mode, no gradient); 4: the "
        "whole backbone, final norm included (the cached tokens' setting, computed in the loop)"))
    grad_checkpointing: bool = Field(False, description=(
        "recompute the backbone's activations in the backward pass (timm's "
        "set_grad_checkpointing): less memory, ~30 % more compute"))
    micro_batch: int | None = Field(None, ge=1, description=(
        "segments per forward/backward pass with the backbone in the loop, gradients accumulated "
        "over the batch (one optimizer step per batch); default: the whole batch on CUDA, 2 on "
        "a CPU"))
    backbone_precision: Literal["auto", "float32"] = Field("auto", description=(
        "the backbone in the loop: auto = the tokens stage's choice (CUDA: bf16 autocast, fp16 "
        "where bf16 is missing, when amp is on; CPU: bf16 autocast where the CPU computes it "
        "natively); float32"))
    backbone_args: dict[str, Any] = Field(default_factory=dict, description=(
        "tests only: a smaller Swin (timm create_model arguments) from random weights; its "
        "export is not a Swin-tiny"))
    model: ModelConfig = ModelConfig()

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.run_folds is not None and any(f < 0 for f in self.run_folds):
            raise ValueError("run_folds are 0-based fold numbers")
        loop_only = {"backbone_weights": None, "backbone_lr": None, "freeze_stages": 0,
                     "grad_checkpointing": False, "micro_batch": None, "backbone_args": {}}
        stray = [k for k, default in loop_only.items() if getattr(self, k) != default]
        if stray and not self.finetune_backbone:
            raise ValueError(f"{', '.join(stray)} only apply with finetune_backbone "
                             "(--finetune-backbone)")
        if self.finetune_backbone and self.model.face_norm != "none":
            raise ValueError(f"face_norm={self.model.face_norm} standardises cached tokens with "
                             "training-fold statistics; with finetune_backbone the tokens change "
                             "every step: use face_norm=none (the paper's)")
        if self.per_subject and self.protocol == "loso":
            raise ValueError("per_subject: one model per subject cannot leave a subject out; use "
                             "protocol trial or segment")
        if self.early_stopping is not None and self.validation_fraction <= 0:
            raise ValueError("early_stopping needs validation trials (validation_fraction > 0)")
        return self

    @property
    def leaky(self) -> bool:
        return self.protocol == "segment"


def deep_update(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update``'s keys set, nested dicts merged key by key (neither is changed)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def load_config_source(source: str | Path | None) -> dict[str, Any]:
    """The fields in a JSON file, or in a named preset of :data:`train.ablations.ABLATIONS`."""
    if source is None:
        return {}
    path = Path(source)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise TrainError(f"{path}: not valid JSON ({err}); give a JSON object of TrainConfig "
                             "fields, e.g. {\"epochs\": 20, \"model\": {\"kind\": \"eeg\"}}") from None
        if not isinstance(data, dict):
            raise TrainError(f"{path}: expected a JSON object of TrainConfig fields")
        return data
    from train.ablations import ABLATIONS

    if str(source) in ABLATIONS:
        return ABLATIONS[str(source)].fields()
    raise TrainError(f"--config {source}: no such file, nor a preset name; presets: "
                     f"{', '.join(ABLATIONS)}")


def resolve_config(source: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """File (or preset) fields, then ``overrides`` that are not ``None``; nested keys as
    ``model={"kind": ...}``. Raises :class:`TrainError` with every invalid field on one line."""
    data = load_config_source(source)
    data = deep_update(data, {k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as err:
        where = f"{source}: " if source else ""
        raise TrainError(where + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in err.errors())) from None
