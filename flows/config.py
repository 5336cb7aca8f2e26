"""The parameters of a preprocessing run: one pydantic model, validated before any work starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pydantic import create_model

from pipeline.errors import DeapInputError
from pipeline.stages import STAGE_TABLE
from pipeline.stages.eeg.params import ICLABEL_NEEDS_RAW
from pipeline.stages.faces.params import FacesParams
from pipeline.stages.ingest.recording import check_deap_folder
from store_schema.errors import StoreError
from store_schema.contract.layout import CROP_SIZE, FRAMES_PER_SEGMENT, Stage
from store_schema.engine.credentials import redacted, refuse_credentials, refuse_url_password
from store_schema.engine.store import FeatureStore

IMPLEMENTED_STAGES: tuple[Stage, ...] = tuple(STAGE_TABLE)
"""Stages this version can run (the stage table's rows), in order; ``all`` means these."""

StageSettings = create_model(
    "StageSettings", __config__=ConfigDict(extra="forbid"),
    **{stage.value: (row.params, Field(default_factory=row.params,
                                       description=f"settings of the {stage.value} stage"))
       for stage, row in STAGE_TABLE.items()})
"""One field per stage, named for it, typed by its row's params model: a stage's settings are
declared once, in its package."""

TOKENS_SHORTHANDS = {"weights": "weights", "device": "device", "tokens_batch_size": "batch_size"}
"""Top-level names earlier configs (and the deployment's parameters) gave the tokens settings."""


class PreprocessConfig(StageSettings):  # type: ignore[misc, valid-type]
    """Everything ``milmer preprocess`` (and the ``preprocess-deap`` flow) needs: the run's
    inputs and runner settings, and each stage's settings (the fields named for the stages)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # never echo a secret

    deap: Path = Field(description="DEAP folder (real or synthetic), or one of its sub-folders")
    store: str = Field(description="feature store: a local folder or an fsspec URL")
    subjects: list[int] | None = Field(
        None, description="subject numbers; default: every sNN.dat (source original: sNN.bdf) found")
    stages: list[Stage] = Field(default_factory=lambda: list(IMPLEMENTED_STAGES))
    report: Path | None = Field(
        None, description="after the run, write a QC report per subject (MNE Report HTML) and an "
        "index.html into this folder; the flow links it as a Prefect artifact")
    content_hash: bool = Field(False, description="fingerprint input files by content, not size+mtime")
    force: bool = Field(False, description="recompute even when fingerprints match")
    storage_options: dict[str, Any] | None = Field(
        None, description="fsspec options for the store URL (endpoint, region, profile, ...); "
        "never credentials: they are refused here, fsspec and s3fs read them from the "
        "environment (AWS_ACCESS_KEY_ID, ...) and credential files (~/.aws/credentials)")
    durable: bool | None = Field(
        None, description="fsync every file of a subject-stage before its commit record (local and "
        "NFS stores; default on unless MILMER_FSYNC=0); off for storage where it does not apply")
    runner: Literal["threads", "processes"] = Field(
        "threads", description="how this machine runs independent subject-stages in parallel "
        "(threads measured faster here: numpy, SciPy and BLAS release the GIL)")
    workers: int | None = Field(None, ge=1, description="parallel subject-stages (default: CPU cores)")
    dask_address: str | None = Field(
        None, description="run the tasks on an existing Dask cluster, e.g. tcp://HOST:8786")
    dask_gpu_resource: str | None = Field(
        None, description="Dask worker resource the tokens stage asks for, e.g. 'GPU': only workers "
        "started with `--resources GPU=1` run it (without such a worker, tokens wait)")

    def loggable(self) -> dict[str, Any]:
        """The config as JSON for a log, a tracker's params or a data card: credentials are
        refused by validation, and anything credential-looking is redacted all the same
        (:func:`store_schema.engine.credentials.redacted`)."""
        return redacted(self.model_dump(mode="json"))

    def open_store(self) -> FeatureStore:
        """The run's store, created when absent, with this run's durability."""
        return FeatureStore.open(self.store, storage_options=self.storage_options,
                                 durable=self.durable)

    def stage_params(self, stage: Stage) -> BaseModel:
        """The settings this run gives ``stage``: the field of its name."""
        return getattr(self, Stage(stage).value)

    @model_validator(mode="before")
    @classmethod
    def _tokens_shorthands(cls, data: Any) -> Any:
        """``weights``, ``device`` and ``tokens_batch_size`` at the top level (the CLI's flags,
        earlier config files, the deployment's parameters) are the tokens stage's settings."""
        if not isinstance(data, dict) or not any(k in data for k in TOKENS_SHORTHANDS):
            return data
        data = dict(data)
        tokens = data.get("tokens") or {}
        tokens = dict(tokens) if isinstance(tokens, dict) else tokens.model_dump()
        for flat, field in TOKENS_SHORTHANDS.items():
            if flat in data:
                value = data.pop(flat)
                if value is not None:
                    tokens[field] = value
        data["tokens"] = tokens
        return data

    @field_validator("storage_options")
    @classmethod
    def _no_credentials(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Secrets never become parameters: the one check of the CLI's flags, a --config file
        and the deployment's parameters (see :mod:`store_schema.engine.credentials`)."""
        return refuse_credentials(value)

    @field_validator("store")
    @classmethod
    def _store_url_without_password(cls, value: str) -> str:
        return refuse_url_password(value)

    @field_validator("dask_address")
    @classmethod
    def _dask_address(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError(f"expected a scheduler address like tcp://HOST:8786, got {value!r}")
        return value

    @model_validator(mode="after")
    def _iclabel_has_raw_data(self) -> "PreprocessConfig":
        if (Stage.eeg in self.stages and self.eeg.ica_labeler == "iclabel"
                and self.ingest.source != "original"):
            raise ValueError(ICLABEL_NEEDS_RAW)
        return self

    @model_validator(mode="after")
    def _tokens_have_weights(self) -> "PreprocessConfig":
        if Stage.tokens not in self.stages:
            return self
        weights = self.tokens.weights
        if weights is None:
            raise ValueError(
                "the tokens stage needs Swin weights: give --weights PATH (a timm .pth/.safetensors "
                "file or a Hugging Face Swin folder), --weights hf-hub:ORG/NAME[@REVISION] (from the "
                "Hugging Face cache), imagenet, face-emotion, or random, or leave tokens out "
                "(--stages ingest,eeg,segment,faces)")
        if weights.startswith("random"):
            return self
        from pipeline.errors import WeightsError
        from pipeline.weights.swin import check_weights  # torch: only for a checkpoint
        from pipeline.weights.swin_source import hub_spec

        try:
            if hub_spec(weights) is None and not Path(weights).expanduser().exists():
                raise ValueError(f"weights {weights} does not exist")
            check_weights(weights)  # a checkpoint that cannot load fails now, not after hours
        except WeightsError as err:
            raise ValueError(str(err)) from None
        return self

    @model_validator(mode="after")
    def _deap_usable(self) -> "PreprocessConfig":
        """Folder-wide problems of the DEAP folder are refused here, before any work: no DEAP
        layout, no sNN.dat (sNN.bdf) to preprocess, and, when ingest runs, a missing or
        unreadable participant_ratings.csv (one subject's bad rows are that subject's failure,
        at ingest)."""
        try:
            check_deap_folder(self.deap, self.subjects, source=self.ingest.source,
                              needs_ratings=Stage.ingest in self.stages)
        except DeapInputError as err:
            raise ValueError(str(err)) from None
        return self

    @model_validator(mode="after")
    def _gpu_resource_needs_dask(self) -> "PreprocessConfig":
        if self.dask_gpu_resource and not self.dask_address:
            raise ValueError("dask_gpu_resource is a Dask worker resource: give dask_address too")
        return self

    @field_validator("faces")
    @classmethod
    def _faces_fit_the_store(cls, value: FacesParams) -> FacesParams:
        if value.frames_per_segment != FRAMES_PER_SEGMENT or value.crop_size != CROP_SIZE:
            raise ValueError(
                f"the store schema holds {FRAMES_PER_SEGMENT} frames per segment of "
                f"{CROP_SIZE}x{CROP_SIZE} crops; got frames_per_segment={value.frames_per_segment}, "
                f"crop_size={value.crop_size}")
        return value

    @model_validator(mode="after")
    def _store_usable(self) -> "PreprocessConfig":
        """An existing local store must be one this version can write: refused here, before any
        work, when it is a file, another Zarr, or made by another schema version. (A remote URL
        is checked when the run opens it.)"""
        if "://" in self.store:
            return self
        path = Path(self.store).expanduser()
        if path.exists() and not path.is_dir():
            raise ValueError(f"{self.store}: is a file, not a feature store folder")
        if any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray")):
            try:
                FeatureStore.open(str(path), mode="r")
            except StoreError as err:
                raise ValueError(str(err)) from None
        return self

    @field_validator("deap")
    @classmethod
    def _deap_exists(cls, value: Path) -> Path:
        if not value.expanduser().exists():
            raise ValueError(f"{value} does not exist")
        return value.expanduser()

    @field_validator("subjects")
    @classmethod
    def _subjects_valid(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one subject, or none for all")
        bad = [s for s in value if not 1 <= s <= 99]
        if bad:
            raise ValueError(f"subject numbers must be 1..99 (files s01.dat..s99.dat), got {bad}")
        return sorted(set(value))

    @field_validator("stages", mode="before")
    @classmethod
    def _stage_names_known(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            known = {s.value for s in Stage}
            unknown = [v for v in value if isinstance(v, str) and not isinstance(v, Stage)
                       and v not in known]
            if unknown:
                raise ValueError(f"unknown stage(s) {unknown}; the stages are "
                                 f"{', '.join(s.value for s in IMPLEMENTED_STAGES)}")
        return value

    @field_validator("stages")
    @classmethod
    def _stages_implemented(cls, value: list[Stage]) -> list[Stage]:
        if not value:
            raise ValueError("give at least one stage")
        missing = [s.value for s in value if s not in IMPLEMENTED_STAGES]
        if missing:
            raise ValueError(f"stage(s) {missing} are not available yet; available: "
                             f"{[s.value for s in IMPLEMENTED_STAGES]}")
        return [s for s in IMPLEMENTED_STAGES if s in value]  # always run in pipeline order
