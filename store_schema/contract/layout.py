"""The layout of the feature store: the one contract between the pipeline and ``train``.

```
<store>/zarr.json                     attrs: schema_version, created_by
<store>/subjects/s01/<stage>/         one group per subject-stage, written by one writer
<store>/subjects/s01/<stage>/<array>  arrays listed below, shapes and dtypes checked on write
```

A subject-stage is committed when its group's attributes hold a ``commit`` record (written last,
atomically on a local disk); readers see nothing else. Sizes named in :data:`FIXED_DIMS` are the
same for every subject; the others (``trial``, ``sample``, ``segment``...) are per subject but must
agree between the arrays of one subject-stage and with its upstream stages.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 2
"""Bump when a reader of the old layout would misread the new one (and say why in
:data:`SCHEMA_CHANGES`)."""

SCHEMA_CHANGES: dict[int, str] = {
    2: "the eeg stage keeps its ICA solution (ica_mixing, ica_unmixing, ica_channel_mean, "
       "ica_flagged, ica_label_probabilities) for the QC report: rebuild eeg and the stages after it",
}
"""What each schema version changed, for the message that refuses an older store."""

N_EEG_CHANNELS = 32
N_EOG_CHANNELS = 2
FRAMES_PER_SEGMENT = 10
CROP_SIZE = 224
N_TOKENS = 49
TOKEN_DIM = 768

FIXED_DIMS: dict[str, int] = {
    "channel": N_EEG_CHANNELS,
    "eog": N_EOG_CHANNELS,
    "rating": 4,
    "frame": FRAMES_PER_SEGMENT,
    "height": CROP_SIZE,
    "width": CROP_SIZE,
    "rgb": 3,
    "box": 4,
    "token": N_TOKENS,
    "feature": TOKEN_DIM,
    "iclabel_class": 7,
}


class Stage(str, Enum):
    ingest = "ingest"
    eeg = "eeg"
    segment = "segment"
    faces = "faces"
    tokens = "tokens"


class ArraySpec(BaseModel):
    """One array of a subject-stage."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: str
    dims: tuple[str, ...]
    chunk: tuple[int | None, ...]
    """Chunk length per dim; ``None`` = the whole extent of that dim."""
    description: str

    def chunk_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(max(1, min(n, c)) if c else max(1, n) for n, c in zip(shape, self.chunk))


class StageSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: Stage
    upstream: tuple[Stage, ...]
    arrays: tuple[ArraySpec, ...]
    description: str
    reads_segment_table: bool = False
    """Depends on the segment *table* (which window of which video), not on the EEG: its input is
    the table's fingerprint, so recomputing the EEG with the same windows leaves it valid."""

    def array(self, name: str) -> ArraySpec:
        for spec in self.arrays:
            if spec.name == name:
                return spec
        raise KeyError(f"stage {self.stage.value} has no array {name!r}")


def _a(name: str, dtype: str, dims: tuple[str, ...], chunk: tuple[int | None, ...], doc: str) -> ArraySpec:
    return ArraySpec(name=name, dtype=dtype, dims=dims, chunk=chunk, description=doc)


SEGMENT_TABLE_COLUMNS: tuple[str, ...] = (
    "trial_index", "experiment_id", "presentation_trial", "segment_index", "start_s",
    "valence", "arousal", "dominance", "liking",
)  # fmt: skip
"""Per-segment columns stored beside the segments (one 1-D array each)."""

SEGMENT_TABLE_FOR_FACES: tuple[str, ...] = ("trial_index", "presentation_trial", "start_s")
"""The segment-table columns that decide which frames the face stage samples."""
SEGMENT_TABLE_INPUT = "segment_table"
"""Input name under which a stage that reads only the segment table records its fingerprint."""

_SEGMENTS_PER_CHUNK = 20  # one DEAP trial's worth of 3 s windows: a training batch reads few chunks

STAGES: dict[Stage, StageSpec] = {
    Stage.ingest: StageSpec(
        stage=Stage.ingest,
        upstream=(),
        description="The subject's EEG, EOG and ratings as read from DEAP, trials in Experiment_id order.",
        arrays=(
            _a("eeg", "float32", ("trial", "channel", "sample"), (1, None, None),
               "32 EEG channels (Geneva order), µV, baseline included"),
            _a("eog", "float32", ("trial", "eog", "sample"), (1, None, None), "hEOG, vEOG, µV"),
            _a("ratings", "float64", ("trial", "rating"), (None, None),
               "valence, arousal, dominance, liking (1-9) from the .dat labels"),
            _a("experiment_id", "int32", ("trial",), (None,), "video id, 1-based (= .dat index + 1)"),
            _a("presentation_trial", "int32", ("trial",), (None,),
               "presentation order, 1-based (names the face video)"),
        ),
    ),
    Stage.eeg: StageSpec(
        stage=Stage.eeg,
        upstream=(Stage.ingest,),
        description="Band-passed EEG with EOG-related ICA components removed.",
        arrays=(
            _a("eeg", "float32", ("trial", "channel", "sample"), (1, None, None), "cleaned EEG, µV"),
            _a("ica_excluded", "int32", ("excluded",), (None,), "indices of excluded ICA components"),
            _a("ica_scores", "float32", ("eog", "component"), (None, None),
               "correlation score of each component with each EOG reference"),
            _a("ica_flagged", "bool", ("eog", "component"), (None, None),
               "find_bads_eog's z-score flagged the component for that reference (it is excluded "
               "only if its |score| also reaches eog_min_correlation)"),
            _a("ica_mixing", "float64", ("channel", "component"), (None, None),
               "sensor-space mixing, µV per unit source: component k adds mixing[:, k] * source k"),
            _a("ica_unmixing", "float64", ("component", "channel"), (None, None),
               "sensor-space unmixing: sources = unmixing @ (band-passed eeg - ica_channel_mean)"),
            _a("ica_channel_mean", "float64", ("channel",), (None,),
               "per-channel mean of the band-passed EEG removed before unmixing (MNE's pca_mean_), µV"),
            _a("ica_label_probabilities", "float32", ("component", "iclabel_class"), (None, None),
               "ICLabel probabilities (brain, muscle, eye, heart, line noise, channel noise, "
               "other) with eeg.ica_labeler 'iclabel'; NaN with the EOG-correlation labeler"),
        ),
    ),
    Stage.segment: StageSpec(
        stage=Stage.segment,
        upstream=(Stage.eeg,),
        description="3 s windows of cleaned EEG after the baseline, and the segment table.",
        arrays=(
            _a("eeg", "float32", ("segment", "channel", "window"), (_SEGMENTS_PER_CHUNK, None, None),
               "EEG windows, µV"),
            _a("trial_index", "int32", ("segment",), (None,), "0-based .dat trial index"),
            _a("experiment_id", "int32", ("segment",), (None,), "video id, 1-based"),
            _a("presentation_trial", "int32", ("segment",), (None,), "presentation order, 1-based"),
            _a("segment_index", "int32", ("segment",), (None,), "window number within its trial"),
            _a("start_s", "float32", ("segment",), (None,), "window start after video playback, s"),
            _a("valence", "float64", ("segment",), (None,), "rating of the trial"),
            _a("arousal", "float64", ("segment",), (None,), "rating of the trial"),
            _a("dominance", "float64", ("segment",), (None,), "rating of the trial"),
            _a("liking", "float64", ("segment",), (None,), "rating of the trial"),
        ),
    ),
    Stage.faces: StageSpec(
        stage=Stage.faces,
        upstream=(Stage.segment,),
        reads_segment_table=True,
        description="10 face crops per segment, 224x224 with center padding.",
        arrays=(
            _a("crops", "uint8", ("segment", "frame", "height", "width", "rgb"), (1, None, None, None, None),
               "RGB crops"),
            _a("detected", "bool", ("segment", "frame"), (None, None), "face detected in this frame"),
            _a("boxes", "float32", ("segment", "frame", "box"), (None, None, None),
               "x, y, w, h in video pixels of the box used"),
            _a("scores", "float32", ("segment", "frame"), (None, None), "detection score (0 if none)"),
            _a("has_video", "bool", ("segment",), (None,), "the segment's video was usable"),
            _a("frame_index", "int32", ("segment", "frame"), (None, None),
               "the video frame each crop shows, 0-based (-1 without video)"),
        ),
    ),
    Stage.tokens: StageSpec(
        stage=Stage.tokens,
        upstream=(Stage.faces,),
        description="Swin-tiny final-stage tokens of every crop.",
        arrays=(
            _a("tokens", "float16", ("segment", "frame", "token", "feature"), (1, None, None, None),
               "49 x 768 tokens per frame, row-major patch order"),
        ),
    ),
}

STAGE_ORDER: tuple[Stage, ...] = tuple(STAGES)


def stage_spec(stage: Stage | str) -> StageSpec:
    return STAGES[Stage(stage)]


def ancestors(stage: Stage | str) -> list[Stage]:
    """Every stage ``stage`` reads, directly or through its upstreams, in stage order."""
    found: set[Stage] = set()
    todo = list(stage_spec(stage).upstream)
    while todo:
        up = todo.pop()
        if up not in found:
            found.add(up)
            todo.extend(stage_spec(up).upstream)
    return [s for s in STAGE_ORDER if s in found]


def subject_key(subject: int) -> str:
    return f"s{subject:02d}"


def stage_path(subject: int, stage: Stage | str) -> str:
    return f"subjects/{subject_key(subject)}/{Stage(stage).value}"
