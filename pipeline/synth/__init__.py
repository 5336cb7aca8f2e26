"""Synthetic DEAP: DEAP's exact file formats, filled with planted, documented signals.

The project never has the real (licensed) DEAP files, so every stage is tested on data written
here. ``write_synthetic_deap`` writes, under ``out/``:

- ``data_preprocessed_python/sNN.dat``: ``{'data': float64 (T, 40, 128*(3+S)), 'labels': float64
  (T, 4)}`` pickled as Python 2 wrote DEAP's files (protocol 2, raw ``str`` payloads, references
  to ``numpy.core``): ``pickle.load(f, encoding="latin1")`` loads it and a plain ``pickle.load(f)``
  fails with UnicodeDecodeError, as on the real files. Trials in ``Experiment_id`` order, channels
  in ``deap_format.ALL_CHANNELS`` order, labels = valence, arousal, dominance, liking.
  With ``params.format = "mat"``: ``data_preprocessed_matlab/sNN.mat`` instead, the same two
  arrays as a MATLAB v5 file (``scipy.io.savemat``; a fixed header text, so no timestamp).
- ``metadata_csv/participant_ratings.csv``: DEAP's verbatim header, one row per (participant,
  Trial), sorted by participant then Trial.
- ``face_video/sNN/sNN_trialTT.avi`` (TT = presentation order) for subjects 1..22, except
  ``params.missing_videos``.
- ``data_original/sNN.bdf`` with ``params.bdf``: the raw recording (512 Hz BioSemi BDF, 48
  channels, Status triggers with DEAP's codes and timings) holding the same trials as the
  ``.dat``; see :func:`bdf_channels`.
- ``synth_manifest.json``: params, generator version and a note that the data is synthetic.

Same params give byte-identical ``.dat``, CSV and manifest files and identical video frames. Every
random draw comes from ``numpy.random.default_rng([seed, subject, stream, ...])``, so a subject's
data never depends on how many subjects (``subjects``) are written. Changing ``trials`` or
``seconds`` changes everything of that subject.

Modules: ``params`` (what to generate, the seeded streams, the per-subject ratings and schedule),
``signals`` (the planted EEG, EOG and peripheral signals), ``face_video`` (face video truth and
rendering), ``writers`` (the ``.dat``, CSV, video, BDF and manifest files). Each module's docstring
documents the numbers it plants; later tests assert on them.
"""

from pipeline.synth.face_video import (
    BASE_FACE_HEIGHT,
    CONTRAST_AROUSAL_SLOPE,
    FRAME_H,
    FRAME_W,
    OCCLUDER_BGR,
    OCCLUDER_GROW,
    OCCLUSION_SECONDS,
    PHOTO_CROP,
    PHOTO_FACE_BOX,
    TINT_VALENCE_SLOPE,
    FaceTruth,
    face_truth,
    render_video_frames,
)
from pipeline.synth.params import (
    DEFAULT_CODEC,
    DEFAULT_DIFFICULTY,
    FAMILIARITY_BLANK_PARTICIPANTS,
    GENERATOR_V2_VERSION,
    GENERATOR_VERSION,
    LegacyGeneratorWarning,
    MANIFEST_NAME,
    MAX_SUBJECTS,
    MAX_TRIALS,
    SYNTHETIC_NOTE,
    SynthParams,
    SynthReport,
    parse_missing_videos,
)
from pipeline.synth.shapes import RAMP_SECONDS
from pipeline.synth.signals import (
    ALPHA_AROUSAL_SLOPE,
    ASYMMETRY_VALENCE_SLOPE,
    BETA_AROUSAL_SLOPE,
    EOG_LEAK,
    EOG_MIXING,
    LEFT_FRONTAL,
    RIGHT_FRONTAL,
    SubjectSignals,
    rhythm_gains,
    subject_signals,
)
from pipeline.synth.writers import (
    BDF_PHYSICAL_RANGE_UV,
    BDF_REST_SECONDS,
    STATUS_HIGH_BITS,
    STATUS_OFFSET_FROM,
    STATUS_PULSE_SECONDS,
    STATUS_RANGE,
    BdfTimeline,
    bdf_channels,
    bdf_timeline,
    write_bdf_file,
    write_subject_bdf,
    write_synthetic_deap,
)

__all__ = [
    "ALPHA_AROUSAL_SLOPE", "ASYMMETRY_VALENCE_SLOPE", "BASE_FACE_HEIGHT", "BDF_PHYSICAL_RANGE_UV",
    "BDF_REST_SECONDS", "BETA_AROUSAL_SLOPE", "CONTRAST_AROUSAL_SLOPE", "DEFAULT_CODEC", "DEFAULT_DIFFICULTY",
    "EOG_LEAK", "GENERATOR_V2_VERSION", "LegacyGeneratorWarning",
    "EOG_MIXING", "FAMILIARITY_BLANK_PARTICIPANTS", "FRAME_H", "FRAME_W", "GENERATOR_VERSION",
    "LEFT_FRONTAL", "MANIFEST_NAME", "MAX_SUBJECTS", "MAX_TRIALS", "OCCLUDER_BGR", "OCCLUDER_GROW",
    "OCCLUSION_SECONDS", "PHOTO_CROP", "PHOTO_FACE_BOX", "RAMP_SECONDS", "RIGHT_FRONTAL",
    "STATUS_HIGH_BITS", "STATUS_OFFSET_FROM", "STATUS_PULSE_SECONDS", "STATUS_RANGE",
    "SYNTHETIC_NOTE", "TINT_VALENCE_SLOPE", "BdfTimeline", "FaceTruth", "SubjectSignals",
    "SynthParams", "SynthReport", "bdf_channels", "bdf_timeline", "face_truth",
    "parse_missing_videos", "render_video_frames", "rhythm_gains", "subject_signals",
    "write_bdf_file", "write_subject_bdf", "write_synthetic_deap",
]  # fmt: skip
