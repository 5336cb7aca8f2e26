"""Subject-stages: name a stage's inputs, read them through the store, call the pipeline, commit.

Each function here is one unit of work, of caching and of failure. It never raises for bad data:
it returns a :class:`StageOutcome` that says computed, skipped (fingerprint match, inputs not
loaded) or failed (with the file and the problem).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from pipeline import deap_format as fmt
from pipeline import faces
from pipeline import stages as compute
from pipeline.bdf import load_bdf_subject
from pipeline.deap import DeapLayout, load_ratings, load_subject
from pipeline.eeg import FILTER_ICA_CODE_VERSION, SEGMENT_CODE_VERSION
from pipeline.errors import DeapInputError
from pipeline.face_model import resolve_face_model
from store_schema.fingerprint import digest, file_fingerprint
from store_schema.failpoints import failpoint
from store_schema.layout import SEGMENT_TABLE_INPUT, Stage, stage_path
from store_schema.runner import StageOutcome, StageOutput, describe_error, is_transient, run_stage
from store_schema.store import FeatureStore

EEG_LIBRARIES = ("numpy", "scipy", "mne", "scikit-learn")

def _log() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a task (progress shows in the run's log), else a plain one."""
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a flow run (tests, notebooks)
        return logging.getLogger(__name__)


def _progress(subject: int, stage: Stage) -> Callable[[str], None]:
    """Log a stage's progress line; each line is also the stage's ``mid-compute`` failpoint."""
    where = stage_path(subject, stage)

    def report(line: str) -> None:
        _log().info("%s %s: %s", fmt.subject_tag(subject), stage.value, line)
        failpoint(where, "mid-compute")

    return report


def _failed(subject: int, stage: Stage, err: Exception, started: float) -> StageOutcome:
    return StageOutcome(subject=subject, stage=stage, status="failed",
                        seconds=time.perf_counter() - started, error=describe_error(err),
                        transient=is_transient(err))


def _with_inputs(
    subject: int, stage: Stage, name_inputs: Callable[[], Mapping[str, str]],
    run: Callable[[Mapping[str, str]], StageOutcome],
) -> StageOutcome:
    """Fingerprint the inputs (cheap: stats and upstream records), then run; a missing input fails."""
    started = time.perf_counter()
    try:
        inputs = name_inputs()
    except Exception as err:  # noqa: BLE001 - a missing input is this subject's failure only
        return _failed(subject, stage, err, started)
    return run(inputs)


def _upstream(store: FeatureStore, subject: int, stage: Stage, upstream: Stage) -> str:
    record = store.record(subject, upstream)
    if record is None:
        raise DeapInputError(
            store.url, f"{fmt.subject_tag(subject)}: stage '{upstream.value}' is not committed, so "
            f"'{stage.value}' cannot run; include '{upstream.value}' in --stages", subject=subject)
    return record.fingerprint


def ingest_stage(
    store: FeatureStore, *, layout: DeapLayout, subject: int, params: compute.IngestParams,
    content_hash: bool = False, force: bool = False,
) -> StageOutcome:
    original = params.source == "original"

    def source_file() -> Path:
        folder, name, label = ((layout.original_dir, fmt.bdf_name(subject), fmt.ORIGINAL_DIR)
                               if original else
                               (layout.preprocessed_dir, fmt.dat_name(subject), fmt.PREPROCESSED_DIR))
        if folder is None:
            raise DeapInputError(layout.root, f"no {label}/ folder found (source '{params.source}')")
        path = folder / name
        if not path.is_file():
            raise DeapInputError(path, "file not found (unknown subject?)", subject=subject)
        return path

    def name_inputs() -> dict[str, str]:
        path = source_file()
        if layout.ratings_csv is None:
            raise DeapInputError(layout.root, f"no {fmt.METADATA_DIR}/{fmt.RATINGS_FILE} found")
        ratings = load_ratings(layout.ratings_csv)
        # Only this subject's rows count: editing another participant's ratings changes nothing here.
        rows = ratings.by_subject.get(subject) or ratings.subject_errors.get(subject, "absent")
        return {"bdf" if original else "dat": file_fingerprint(path, content=content_hash),
                "ratings": digest(rows if isinstance(rows, str) else [r.model_dump() for r in rows])}

    def load() -> StageOutput:
        if not original:
            recording = load_subject(layout, subject, check_videos=False)
        else:
            ratings = load_ratings(layout.ratings_csv)
            if subject in ratings.subject_errors:
                raise DeapInputError(ratings.path, f"participant {subject}: "
                                     f"{ratings.subject_errors[subject]}", subject=subject)
            if subject not in ratings.by_subject:
                raise DeapInputError(ratings.path, f"participant {subject} has no rows",
                                     subject=subject)
            recording = load_bdf_subject(source_file(), subject=subject,
                                         rows=ratings.by_subject[subject])
        arrays, extra = compute.ingest(recording=recording)
        return StageOutput(arrays=arrays, extra=extra)

    return _with_inputs(subject, Stage.ingest, name_inputs, lambda inputs: run_stage(
        store, subject=subject, stage=Stage.ingest, params=params,
        code_version=compute.INGEST_CODE_VERSION, inputs=inputs, compute=load,
        libraries=("numpy", "mne") if original else ("numpy",), force=force))


def eeg_stage(
    store: FeatureStore, *, subject: int, params: compute.FilterIcaParams, force: bool = False,
) -> StageOutcome:
    def clean() -> StageOutput:
        record = store.record(subject, Stage.ingest)
        arrays, extra = compute.clean_eeg(
            eeg=store.read(subject, Stage.ingest, "eeg"), eog=store.read(subject, Stage.ingest, "eog"),
            sfreq=record.extra["sfreq"], params=params,
            progress=_progress(subject, Stage.eeg))
        return StageOutput(arrays=arrays, extra=extra)

    return _with_inputs(
        subject, Stage.eeg, lambda: {"ingest": _upstream(store, subject, Stage.eeg, Stage.ingest)},
        lambda inputs: run_stage(
            store, subject=subject, stage=Stage.eeg, params=params,
            code_version=FILTER_ICA_CODE_VERSION, inputs=inputs, compute=clean,
            libraries=EEG_LIBRARIES, force=force))


def segment_stage(
    store: FeatureStore, *, subject: int, params: compute.SegmentParams, force: bool = False,
) -> StageOutcome:
    def cut() -> StageOutput:
        ingest_record = store.record(subject, Stage.ingest)
        arrays, extra = compute.segment(
            eeg=store.read(subject, Stage.eeg, "eeg"),
            ratings=store.read(subject, Stage.ingest, "ratings"),
            experiment_id=store.read(subject, Stage.ingest, "experiment_id"),
            presentation_trial=store.read(subject, Stage.ingest, "presentation_trial"),
            sfreq=ingest_record.extra["sfreq"], params=params)
        return StageOutput(arrays=arrays, extra=extra)

    return _with_inputs(
        subject, Stage.segment, lambda: {"eeg": _upstream(store, subject, Stage.segment, Stage.eeg)},
        lambda inputs: run_stage(
            store, subject=subject, stage=Stage.segment, params=params,
            code_version=SEGMENT_CODE_VERSION, inputs=inputs, compute=cut,
            libraries=("numpy",), force=force))


def faces_stage(
    store: FeatureStore, *, layout: DeapLayout, subject: int, params: faces.FacesParams,
    content_hash: bool = False, force: bool = False,
) -> StageOutcome:
    """Inputs: the segment table (which windows), every face video of the subject (size+mtime, or content with
    ``content_hash``; a missing file counts as ``missing``) and the model's sha256 (not its path)."""
    model: dict[str, object] = {}

    def name_inputs() -> dict[str, str]:
        _upstream(store, subject, Stage.faces, Stage.segment)  # committed, or a hint to run it
        model["path"], model["sha256"] = resolve_face_model(params.model_path)
        videos = faces.expected_videos(layout.video_dir, subject,
                                       store.read(subject, Stage.segment, "presentation_trial"))
        return {
            # the windows, not the EEG: a new filter or EEG source leaves the faces valid
            SEGMENT_TABLE_INPUT: store.segment_table_fingerprint(subject),
            "model": f"sha256:{model['sha256']}",
            **{f"video:{name}": file_fingerprint(path, content=content_hash)
               if path is not None and path.is_file() else "missing"
               for name, path in videos.items()},
        }

    def detect() -> StageOutput:
        ingest, segment = store.record(subject, Stage.ingest), store.record(subject, Stage.segment)
        if ingest is None or segment is None:
            raise DeapInputError(store.url, f"{fmt.subject_tag(subject)}: ingest/segment records "
                                 "vanished during the run; run the stages again", subject=subject)
        arrays, extra = faces.subject_faces(
            video_dir=layout.video_dir, subject=subject,
            trial_index=store.read(subject, Stage.segment, "trial_index"),
            presentation_trial=store.read(subject, Stage.segment, "presentation_trial"),
            start_s=store.read(subject, Stage.segment, "start_s"),
            trial_seconds=ingest.extra["trial_seconds"], window_s=segment.params["window_s"],
            params=params, model_path=Path(str(model["path"])),
            progress=_progress(subject, Stage.faces))
        extra["model"] = {"path": str(model["path"]), "sha256": model["sha256"]}
        return StageOutput(arrays=arrays, extra=extra, warnings=faces.problem_lines(extra))

    # The model enters the fingerprint by its hash (an input), never by where it lies.
    recorded = params.model_copy(update={"model_path": None})
    return _with_inputs(subject, Stage.faces, name_inputs, lambda inputs: run_stage(
        store, subject=subject, stage=Stage.faces, params=recorded,
        code_version=faces.FACES_CODE_VERSION, inputs=inputs, compute=detect,
        libraries=faces.LIBRARIES, force=force))


def tokens_stage(
    store: FeatureStore, *, subject: int, weights: str, device: str, batch_size: int | None,
    force: bool = False,
) -> StageOutcome:
    """Inputs: the faces stage. The weights enter through the params, by content hash."""
    from pipeline import tokens  # torch and timm: imported only when tokens run

    resolved: dict[str, tokens.TokensParams] = {}

    def name_inputs() -> dict[str, str]:
        # Resolved on the machine that computes: 'auto' is float32 on a CPU, bf16 on a GPU.
        resolved["params"] = tokens.TokensParams.from_weights(weights, device=device,
                                                              batch_size=batch_size)
        return {"faces": _upstream(store, subject, Stage.tokens, Stage.faces)}

    def extract() -> StageOutput:
        extractor = tokens.TokenExtractor(weights=weights, params=resolved["params"])
        arrays, extra = tokens.tokens_for_subject(
            crops=store.array(subject, Stage.faces, "crops"), extractor=extractor,
            progress=lambda done, total: _progress(subject, Stage.tokens)(f"{done} of {total} frames"))
        return StageOutput(arrays=arrays, extra=extra)

    def run(inputs: Mapping[str, str]) -> StageOutcome:
        return run_stage(store, subject=subject, stage=Stage.tokens, params=resolved["params"],
                         code_version=tokens.TOKENS_CODE_VERSION, inputs=inputs, compute=extract,
                         libraries=tokens.LIBRARIES, force=force)

    return _with_inputs(subject, Stage.tokens, name_inputs, run)
