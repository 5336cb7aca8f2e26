"""Facts about DEAP's files, shared by the reader and the synthetic writer.

Every constant here is documented in ``shared/DEAP_FORMAT.md``; the reader validates against them
and the synthetic generator writes them, so both sides cannot drift apart.
"""

from __future__ import annotations

SFREQ = 128
"""Sampling rate of ``data_preprocessed_python`` (Hz)."""

BASELINE_SECONDS = 3
"""Pre-trial baseline at the start of every preprocessed trial (3 s = 384 samples)."""

BASELINE_SAMPLES = BASELINE_SECONDS * SFREQ

EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1",
    "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2",
    "P4", "P8", "PO4", "O2",
)  # fmt: skip
"""The 32 EEG channels of the preprocessed data, in Geneva order (rows 0..31 of ``data``)."""

PERIPHERAL_CHANNELS: tuple[str, ...] = (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature",
)  # fmt: skip
"""Rows 32..39 of ``data``."""

ALL_CHANNELS: tuple[str, ...] = EEG_CHANNELS + PERIPHERAL_CHANNELS
N_CHANNELS = len(ALL_CHANNELS)  # 40
EOG_CHANNELS: tuple[str, str] = ("hEOG", "vEOG")

TWENTE_EEG_ORDER: tuple[str, ...] = (
    "Fp1", "AF3", "F7", "F3", "FC1", "FC5", "T7", "C3", "CP1", "CP5", "P7", "P3", "Pz", "PO3",
    "O1", "Oz", "O2", "PO4", "P4", "P8", "CP6", "CP2", "C4", "T8", "FC6", "FC2", "F4", "F8",
    "AF4", "Fp2", "Fz", "Cz",
)  # fmt: skip
"""EEG order of the raw BDF recordings of participants 1-22 (recorded in Twente)."""

LAST_TWENTE_SUBJECT = 22
"""Participants 1..22 were recorded in Twente (``TWENTE_EEG_ORDER``), 23..32 in Geneva."""

BDF_SFREQ = 512
"""Sampling rate of the raw ``data_original`` BDF recordings (Hz)."""

EXG_CHANNELS: tuple[str, ...] = tuple(f"EXG{i}" for i in range(1, 9))
"""EXG1..EXG8 of the raw BDF: hEOG1, hEOG2, vEOG1, vEOG2, zEMG1, zEMG2, tEMG1, tEMG2."""

BDF_OTHER_CHANNELS: tuple[str, ...] = ("GSR1", "GSR2", "Erg1", "Erg2", "Resp", "Plet", "Temp")

STATUS_CHANNEL_NAMES: tuple[str, ...] = ("Status", "", "-1")
"""Names of the BDF trigger channel: ``Status`` (1-23), ``''`` (24-28), ``-1`` (29-32)."""

STATUS_CODES = {"start": 1, "sync": 2, "fixation": 3, "playback": 4, "after": 5, "end": 7}
"""Trigger codes in the low 8 bits of the Status channel (``shared/DEAP_FORMAT.md``)."""

RATING_NAMES: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")
"""Columns of ``labels`` in a ``.dat`` file."""

RATING_MIN, RATING_MAX = 1.0, 9.0

RATINGS_COLUMNS: tuple[str, ...] = (
    "Participant_id", "Trial", "Experiment_id", "Start_time",
    "Valence", "Arousal", "Dominance", "Liking", "Familiarity",
)  # fmt: skip
RATINGS_HEADER_LINE = ",".join(f'"{c}"' for c in RATINGS_COLUMNS)
"""Header of ``metadata_csv/participant_ratings.csv``, verbatim (names quoted)."""

PREPROCESSED_DIR = "data_preprocessed_python"
PREPROCESSED_MATLAB_DIR = "data_preprocessed_matlab"
"""The same arrays as ``PREPROCESSED_DIR`` as MATLAB v5 files (``sNN.mat``: ``data``, ``labels``)."""
ORIGINAL_DIR = "data_original"
METADATA_DIR = "metadata_csv"
RATINGS_FILE = "participant_ratings.csv"
VIDEO_DIR = "face_video"
LAST_SUBJECT_WITH_VIDEO = 22
"""Only participants 1..22 were filmed."""


def subject_tag(subject: int) -> str:
    """``s01`` for subject 1: the prefix of every per-subject file name."""
    return f"s{subject:02d}"


def dat_name(subject: int) -> str:
    return f"{subject_tag(subject)}.dat"


def mat_name(subject: int) -> str:
    """MATLAB copy of ``sNN.dat`` in ``data_preprocessed_matlab``, e.g. ``s01.mat``."""
    return f"{subject_tag(subject)}.mat"


def bdf_name(subject: int) -> str:
    """Raw recording of ``subject`` in ``data_original``, e.g. ``s01.bdf``."""
    return f"{subject_tag(subject)}.bdf"


def video_name(subject: int, trial: int) -> str:
    """Face video of presentation-order ``trial`` (1-based), e.g. ``s01_trial03.avi``."""
    return f"{subject_tag(subject)}_trial{trial:02d}.avi"
