"""The parameters of a preprocessing run: one pydantic model, validated before any work starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.eeg_params import ICLABEL_NEEDS_RAW, FilterIcaParams
from pipeline.errors import DeapInputError
from pipeline.faces_params import FacesParams
from pipeline.ingest import IngestParams, check_deap_folder
from pipeline.segment import SegmentParams
from pipeline.stage_table import STAGE_TABLE, TokensSettings
from store_schema.errors import StoreError
from store_schema.layout import CROP_SIZE, FRAMES_PER_SEGMENT, Stage
from store_schema.store import FeatureStore

IMPLEMENTED_STAGES: tuple[Stage, ...] = tuple(STAGE_TABLE)
"""Stages this version can run (the stage table's rows), in order; ``all`` means these."""


class PreprocessConfig(BaseModel):
    """Everything ``milmer preprocess`` (and the ``preprocess-deap`` flow) needs."""

    model_config = ConfigDict(extra="forbid")

    deap: Path = Field(description="DEAP folder (real or synthetic), or one of its sub-folders")
    store: str = Field(description="feature store: a local folder or an fsspec URL")
    subjects: list[int] | None = Field(
        None, description="subject numbers; default: every sNN.dat (source original: sNN.bdf) found")
    stages: list[Stage] = Field(default_factory=lambda: list(IMPLEMENTED_STAGES))
    ingest: IngestParams = IngestParams()
    eeg: FilterIcaParams = FilterIcaParams()
    segment: SegmentParams = SegmentParams()
    faces: FacesParams = FacesParams()
    report: Path | None = Field(
        None, description="after the run, write a QC report per subject (MNE Report HTML) and an "
        "index.html into this folder; the flow links it as a Prefect artifact")
    weights: str | None = Field(
        None, description="Swin weights for the tokens stage: a timm checkpoint file, a Hugging Face "
        "Swin folder, or 'random' (random init, recorded as such)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="tokens stage device")
    tokens_batch_size: int | None = Field(None, ge=1, description="frames per forward (default: 32 CPU, 256 CUDA)")
    content_hash: bool = Field(False, description="fingerprint input files by content, not size+mtime")
    force: bool = Field(False, description="recompute even when fingerprints match")
    storage_options: dict[str, Any] | None = Field(None, description="fsspec options for the store URL")
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

    def open_store(self) -> FeatureStore:
        """The run's store, created when absent, with this run's durability."""
        return FeatureStore.open(self.store, storage_options=self.storage_options,
                                 durable=self.durable)

    def stage_params(self, stage: Stage) -> BaseModel:
        """The settings this run gives ``stage`` (its row of the stage table names the model)."""
        if stage == Stage.tokens:
            assert self.weights is not None  # refused by the validator when tokens run
            return TokensSettings(weights=self.weights, device=self.device,
                                  batch_size=self.tokens_batch_size)
        return getattr(self, stage.value)  # each stage's settings are the field of its name

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
        if self.weights is None:
            raise ValueError(
                "the tokens stage needs Swin weights: give --weights PATH (a timm .pth/.safetensors "
                "file or a Hugging Face Swin folder) or --weights random, or leave tokens out "
                "(--stages ingest,eeg,segment,faces)")
        if self.weights.startswith("random"):
            return self
        if not Path(self.weights).expanduser().exists():
            raise ValueError(f"weights {self.weights} does not exist")
        from pipeline.errors import WeightsError
        from pipeline.swin_weights import check_weights  # torch: only for a checkpoint

        try:
            check_weights(self.weights)  # a checkpoint that cannot load fails now, not after hours
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
