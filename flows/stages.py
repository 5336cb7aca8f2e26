"""Subject-stages: name a stage's inputs, read them through the store, call the pipeline, commit.

Each function here is one unit of work, of caching and of failure. It never raises for bad data:
it returns a :class:`StageOutcome` that says computed, skipped (fingerprint match, inputs not
loaded) or failed (with the file and the problem).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from pipeline import deap_format as fmt
from pipeline import stages as compute
from pipeline.deap import DeapLayout, load_ratings, load_subject
from pipeline.eeg import FILTER_ICA_CODE_VERSION, SEGMENT_CODE_VERSION
from pipeline.errors import DeapInputError
from store_schema.fingerprint import digest, file_fingerprint
from store_schema.layout import Stage
from store_schema.runner import StageOutcome, StageOutput, describe_error, is_transient, run_stage
from store_schema.store import FeatureStore

EEG_LIBRARIES = ("numpy", "scipy", "mne", "scikit-learn")


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
    def name_inputs() -> dict[str, str]:
        if layout.preprocessed_dir is None:
            raise DeapInputError(layout.root, f"no {fmt.PREPROCESSED_DIR}/ folder found")
        dat = layout.preprocessed_dir / fmt.dat_name(subject)
        if not dat.is_file():
            raise DeapInputError(dat, "file not found (unknown subject?)", subject=subject)
        if layout.ratings_csv is None:
            raise DeapInputError(layout.root, f"no {fmt.METADATA_DIR}/{fmt.RATINGS_FILE} found")
        ratings = load_ratings(layout.ratings_csv)
        # Only this subject's rows count: editing another participant's ratings changes nothing here.
        rows = ratings.by_subject.get(subject) or ratings.subject_errors.get(subject, "absent")
        return {"dat": file_fingerprint(dat, content=content_hash),
                "ratings": digest(rows if isinstance(rows, str) else [r.model_dump() for r in rows])}

    def load() -> StageOutput:
        arrays, extra = compute.ingest(recording=load_subject(layout, subject, check_videos=False))
        return StageOutput(arrays=arrays, extra=extra)

    return _with_inputs(subject, Stage.ingest, name_inputs, lambda inputs: run_stage(
        store, subject=subject, stage=Stage.ingest, params=params,
        code_version=compute.INGEST_CODE_VERSION, inputs=inputs, compute=load,
        libraries=("numpy",), force=force))


def eeg_stage(
    store: FeatureStore, *, subject: int, params: compute.FilterIcaParams, force: bool = False,
) -> StageOutcome:
    def clean() -> StageOutput:
        record = store.record(subject, Stage.ingest)
        arrays, extra = compute.clean_eeg(
            eeg=store.read(subject, Stage.ingest, "eeg"), eog=store.read(subject, Stage.ingest, "eog"),
            sfreq=record.extra["sfreq"], params=params)
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
