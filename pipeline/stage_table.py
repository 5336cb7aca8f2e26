"""The stage table: one row per stage, in pipeline order.

Each row names the stage's params model, code version, recorded libraries, what it reads from the
store, how it names its other inputs for the fingerprint, and its pure function (see
:class:`store_schema.table.StageRow`). :func:`store_schema.runner.run_row` does the rest for every
stage alike. Adding a stage: a module in ``pipeline/`` (params model + pure function), a
:class:`StageSpec` in :mod:`store_schema.layout`, and a row here.

Model files are treated alike (faces' BlazeFace, tokens' Swin weights): their path is where to
find them (a keyword argument, never hashed), their content hash is an input (``model``,
``weights``): moving a file recomputes nothing, changing it recomputes the stage.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from pipeline import eeg_params, faces_params, ingest, segment
from pipeline.deap import find_layout
from pipeline.errors import ParameterError
from pipeline.face_model import resolve_face_model
from pipeline.face_truth import face_truth_dir
from pipeline.video import expected_videos
from store_schema.fingerprint import file_fingerprint
from store_schema.layout import Stage
from store_schema.table import Prepared, Read, Reader, StageContext, StageResult, StageRow


def _ingest_inputs(params: ingest.IngestParams, context: StageContext, read: Reader) -> Prepared:
    assert context.deap is not None, "ingest needs the DEAP folder"
    return Prepared(params=params, inputs=ingest.ingest_inputs(
        deap=context.deap, subject=context.subject, params=params,
        content_hash=context.content_hash))


def _eeg_inputs(params: eeg_params.FilterIcaParams, context: StageContext, read: Reader) -> Prepared:
    """With ICLabel, the raw BDF at 256 Hz (read by the stage when it computes); refused on the
    128 Hz ``.dat``."""
    if params.ica_labeler != "iclabel":
        return Prepared(params=params)
    if read(Read(Stage.ingest, param="source")) != "original" or context.deap is None:
        raise ParameterError(eeg_params.ICLABEL_NEEDS_RAW)
    from pipeline.eeg_iclabel import ICLABEL_SFREQ

    return Prepared(params=params, kwargs={"high_rate": functools.partial(
        ingest.high_rate_trials, deap=context.deap, subject=context.subject, sfreq=ICLABEL_SFREQ)})


def _clean_eeg(**kwargs: Any) -> StageResult:
    from pipeline import eeg  # MNE: imported only when the stage computes

    return eeg.clean_eeg(**kwargs)


def _faces_inputs(params: faces_params.FacesParams, context: StageContext, read: Reader) -> Prepared:
    """The segment table (an upstream input), every face video of the subject (size+mtime, or
    content; a missing file counts as ``missing``) and the model's sha256 (not its path)."""
    model_path, sha256 = resolve_face_model(params.model_path)
    video_dir = find_layout(context.deap).video_dir if context.deap is not None else None
    videos = expected_videos(video_dir, context.subject,
                                   read(Read(Stage.segment, array="presentation_trial")))
    return Prepared(
        params=params.model_copy(update={"model_path": None}),
        inputs={"model": f"sha256:{sha256}",
                **{f"video:{name}": file_fingerprint(path, content=context.content_hash)
                   if path is not None and path.is_file() else "missing"
                   for name, path in videos.items()}},
        kwargs={"video_dir": video_dir, "model_path": model_path, "model_sha256": sha256,
                "truth_dir": face_truth_dir(context.deap)})


def _faces(*, model_path: Path, model_sha256: str, **kwargs: Any) -> StageResult:
    from pipeline import faces  # OpenCV and MediaPipe: imported only when the stage computes

    arrays, extra = faces.subject_faces(model_path=model_path, **kwargs)
    extra["model"] = {"path": str(model_path), "sha256": model_sha256}
    return arrays, extra


class TokensSettings(BaseModel):
    """What a run asks of the tokens stage; :func:`_tokens_inputs` makes it the recorded
    :class:`pipeline.tokens.TokensParams` on the machine that computes (``auto`` resolved there,
    the weights hashed). Kept here, apart from :mod:`pipeline.tokens`, so that naming the stage
    does not import torch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: str = Field(description="a checkpoint path, a Hugging Face folder, or random[:SEED]")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: PositiveInt | None = None


def _tokens_inputs(settings: TokensSettings, context: StageContext, read: Reader) -> Prepared:
    from pipeline import tokens  # torch and timm: imported only when tokens run

    params = tokens.TokensParams.from_weights(settings.weights, device=settings.device,
                                              batch_size=settings.batch_size)
    return Prepared(params=params, inputs={"weights": params.weights_fingerprint},
                    kwargs={"weights": settings.weights})


def _tokens(**kwargs: Any) -> StageResult:
    from pipeline import tokens

    return tokens.subject_tokens(**kwargs)


def _tokens_libraries(params: BaseModel) -> tuple[str, ...]:
    from pipeline import tokens

    return tokens.LIBRARIES


def _tokens_code_version() -> str:
    from pipeline import tokens

    return tokens.TOKENS_CODE_VERSION


STAGE_TABLE: dict[Stage, StageRow] = {
    Stage.ingest: StageRow(
        stage=Stage.ingest, params=ingest.IngestParams, code_version=ingest.INGEST_CODE_VERSION,
        libraries=lambda params: params.libraries(), function=ingest.ingest,
        prepare=_ingest_inputs, context=("deap", "subject")),
    Stage.eeg: StageRow(
        stage=Stage.eeg, params=eeg_params.FilterIcaParams,
        code_version=eeg_params.FILTER_ICA_CODE_VERSION, libraries=eeg_params.libraries,
        function=_clean_eeg, context=("progress",),
        prepare=_eeg_inputs,
        reads={"eeg": Read(Stage.ingest, array="eeg"), "eog": Read(Stage.ingest, array="eog"),
               "sfreq": Read(Stage.ingest, extra="sfreq")}),
    Stage.segment: StageRow(
        stage=Stage.segment, params=segment.SegmentParams, code_version=segment.SEGMENT_CODE_VERSION,
        libraries=("numpy",), function=segment.segment,
        reads={"eeg": Read(Stage.eeg, array="eeg"), "ratings": Read(Stage.ingest, array="ratings"),
               "experiment_id": Read(Stage.ingest, array="experiment_id"),
               "presentation_trial": Read(Stage.ingest, array="presentation_trial"),
               "sfreq": Read(Stage.ingest, extra="sfreq")}),
    Stage.faces: StageRow(
        stage=Stage.faces, params=faces_params.FacesParams,
        code_version=faces_params.FACES_CODE_VERSION, libraries=faces_params.LIBRARIES,
        function=_faces, prepare=_faces_inputs,
        context=("subject", "progress"), warnings=faces_params.problem_lines,
        reads={"trial_index": Read(Stage.segment, array="trial_index"),
               "presentation_trial": Read(Stage.segment, array="presentation_trial"),
               "start_s": Read(Stage.segment, array="start_s"),
               "trial_seconds": Read(Stage.ingest, extra="trial_seconds"),
               "window_s": Read(Stage.segment, param="window_s")}),
    Stage.tokens: StageRow(
        stage=Stage.tokens, params=TokensSettings, code_version=_tokens_code_version,
        libraries=_tokens_libraries, function=_tokens, prepare=_tokens_inputs,
        context=("progress",), reads={"crops": Read(Stage.faces, array="crops", lazy=True)}),
}
"""Every stage, in pipeline order."""
