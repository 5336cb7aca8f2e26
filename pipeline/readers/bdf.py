"""Read one raw DEAP recording (``data_original/sNN.bdf``) into the shapes of the ``.dat`` path.

What :func:`load_bdf_subject` does, in order (facts from ``shared/DEAP_FORMAT.md``):

1. Opens the file with ``mne.io.read_raw_bdf`` (no preload) and refuses a sampling rate other
   than 512 Hz.
2. Finds the 32 EEG channels by name and takes them in Geneva order (``deap_format.EEG_CHANNELS``):
   participants 1-22 were recorded in Twente order, so picking by name reorders them. A file
   whose first 32 channels carry no electrode names (e.g. ``A1..A32``) is read by position:
   Twente order for participants 1-22, Geneva for 23-32, recorded as such.
3. Finds the trials on the trigger channel (``Status``, ``''`` or ``-1``): only the low 8 bits
   are codes (participants 24-32 carry offsets in the high bits), a trial starts where the code
   becomes 4 (video playback). The k-th code-4 marker is presentation-order ``Trial`` k, mapped to
   ``Experiment_id`` through the ratings CSV. As many code-4 markers as rated trials, or a
   :class:`DeapInputError` naming the file and both counts (participant 28's irregular markers
   land here: reported, never guessed).
4. Cuts each trial as the 3 s before playback (the baseline) plus the playback (``trial_seconds``:
   the median code-4 → code-5 interval rounded to whole seconds; DEAP's 60 s when there is no code
   5), with 1 s of context either side for the filters.
5. Re-references the EEG to the common average, builds hEOG = EXG1 − EXG2 and vEOG = EXG3 − EXG4,
   converts to µV and resamples 512 → 128 Hz with MNE's polyphase resampler (anti-aliasing
   low-pass), then drops the context.

Result: (T, 32, 128·(3+S)) EEG and (T, 2, ...) EOG in ``Experiment_id`` order, as from ``.dat``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.readers import deap_format as fmt
from pipeline.errors import DeapInputError
from pipeline.readers.ratings import TrialRating

CONTEXT_SECONDS = 1.0
"""Extra signal read on each side of a trial so the resampler's edges fall outside it."""

DEFAULT_TRIAL_SECONDS = 60
"""DEAP's music videos are 60 s; used when the file has no code-5 (post-trial) markers."""

LOW_BYTE = 0xFF

ChannelOrder = Literal["names", "twente", "geneva"]


@dataclass(frozen=True)
class StatusEvents:
    """Trigger onsets of a Status channel: sample index and code (low 8 bits)."""

    samples: np.ndarray  # (E,) int64
    codes: np.ndarray  # (E,) int64

    def onsets(self, code: int) -> np.ndarray:
        return self.samples[self.codes == code]


def status_events(status: np.ndarray) -> StatusEvents:
    """Where the low 8 bits of ``status`` change to a non-zero code.

    High bits (BioSemi system bits, the offsets of participants 24-32) are masked off, so an
    offset that changes mid-recording creates no event.
    """
    codes = np.rint(np.asarray(status, dtype=np.float64)).astype(np.int64) & LOW_BYTE
    previous = np.concatenate([[0], codes[:-1]])
    where = np.flatnonzero((codes != previous) & (codes != 0))
    return StatusEvents(samples=where.astype(np.int64), codes=codes[where])


@dataclass(frozen=True)
class BdfRecording:
    """One subject's raw recording, cut and resampled like the ``.dat`` trials."""

    path: Path
    subject: int
    eeg: np.ndarray  # (T, 32, n) float32 µV, Geneva order, common-average referenced, 128 Hz
    eog: np.ndarray  # (T, 2, n) float32 µV: hEOG = EXG1-EXG2, vEOG = EXG3-EXG4
    ratings: np.ndarray  # (T, 4) valence, arousal, dominance, liking (ratings CSV)
    experiment_id: np.ndarray  # (T,) 1..T: row e is Experiment_id e+1
    presentation_trial: np.ndarray  # (T,) Trial of each row
    trial_seconds: float
    channel_order: ChannelOrder
    status_channel: str
    playback_onsets_s: np.ndarray  # (T,) presentation order, seconds from the file start
    sfreq: int = fmt.SFREQ
    """The rate the trials were resampled to (``out_sfreq``)."""


def _eeg_picks(names: list[str], subject: int, path: Path) -> tuple[list[int], ChannelOrder]:
    if all(name in names for name in fmt.EEG_CHANNELS):
        return [names.index(name) for name in fmt.EEG_CHANNELS], "names"
    if len(names) >= len(fmt.EEG_CHANNELS) and not set(names[:32]) & set(fmt.EEG_CHANNELS):
        twente = subject <= fmt.LAST_TWENTE_SUBJECT
        order = fmt.TWENTE_EEG_ORDER if twente else fmt.EEG_CHANNELS
        return [order.index(name) for name in fmt.EEG_CHANNELS], "twente" if twente else "geneva"
    missing = [name for name in fmt.EEG_CHANNELS if name not in names]
    raise DeapInputError(path, f"EEG channel(s) {', '.join(missing)} not found (channels: "
                         f"{', '.join(repr(n) for n in names)})", subject=subject)


def _status_index(raw, path: Path, subject: int) -> int:  # noqa: ANN001 - mne Raw
    names = raw.ch_names
    for name in fmt.STATUS_CHANNEL_NAMES:
        if name in names:
            return names.index(name)
    stim = [i for i, kind in enumerate(raw.get_channel_types()) if kind == "stim"]
    if stim:
        return stim[-1]
    raise DeapInputError(path, "no trigger channel (looked for 'Status', '', '-1' and any stim "
                         "channel)", subject=subject)


def _trial_seconds(events: StatusEvents, onsets: np.ndarray, sfreq: float) -> int:
    after = events.onsets(fmt.STATUS_CODES["after"])
    lengths = []
    for onset in onsets:
        later = after[after > onset]
        if later.size:
            lengths.append((later[0] - onset) / sfreq)
    if not lengths:
        return DEFAULT_TRIAL_SECONDS
    return int(round(float(np.median(lengths))))


def load_bdf_subject(
    path: Path | str, *, subject: int, rows: list[TrialRating], out_sfreq: int = fmt.SFREQ,
) -> BdfRecording:
    """Read ``path`` and return its trials in ``Experiment_id`` order (see the module docstring).

    ``rows`` are the subject's rows of ``participant_ratings.csv``. Raises
    :class:`DeapInputError` naming the file for every problem.
    """
    import mne

    path = Path(path)
    if not path.is_file():
        raise DeapInputError(path, "file not found", subject=subject)
    try:
        raw = mne.io.read_raw_bdf(path, preload=False, verbose="error")
    except Exception as err:  # noqa: BLE001 - MNE raises many types for a bad header
        raise DeapInputError(path, f"cannot be read as BDF ({type(err).__name__}: {err})",
                             subject=subject) from err
    sfreq = float(raw.info["sfreq"])
    if sfreq != fmt.BDF_SFREQ:
        raise DeapInputError(path, f"sampling rate is {sfreq:g} Hz, expected DEAP's "
                             f"{fmt.BDF_SFREQ} Hz (is this a DEAP data_original file?)",
                             subject=subject)
    names = list(raw.ch_names)
    eeg_picks, order = _eeg_picks(names, subject, path)
    missing_exg = [name for name in fmt.EXG_CHANNELS[:4] if name not in names]
    if missing_exg:
        raise DeapInputError(path, f"EOG channel(s) {', '.join(missing_exg)} not found",
                             subject=subject)
    exg_picks = [names.index(name) for name in fmt.EXG_CHANNELS[:4]]
    status_pick = _status_index(raw, path, subject)
    status = raw.get_data(picks=[status_pick])[0]
    # MNE may have scaled a stim channel whose ranges differ; the codes are the digital values.
    events = status_events(status)

    playback = events.onsets(fmt.STATUS_CODES["playback"])
    rows = sorted(rows, key=lambda r: r.trial)
    if playback.size == 0:
        raise DeapInputError(path, "no code-4 (video playback) marker on the status channel "
                             f"'{names[status_pick]}': cannot find the trials", subject=subject)
    if playback.size != len(rows):
        raise DeapInputError(
            path, f"{playback.size} code-4 (playback) markers but {len(rows)} rated trials in "
            f"the ratings CSV: the trials cannot be paired automatically (DEAP's participant 28 "
            "is known to be irregular); leave this subject out or use source 'preprocessed'",
            subject=subject)
    seconds = _trial_seconds(events, playback, sfreq)
    factor = sfreq / out_sfreq
    if factor != int(factor):
        raise DeapInputError(path, f"cannot resample {sfreq:g} Hz to {out_sfreq} Hz by an "
                             "integer factor", subject=subject)
    down = int(factor)
    baseline = fmt.BASELINE_SECONDS * int(sfreq)
    length = (fmt.BASELINE_SECONDS + seconds) * int(sfreq)
    context = int(CONTEXT_SECONDS * sfreq)
    n_out = (fmt.BASELINE_SECONDS + seconds) * out_sfreq
    n_times = raw.n_times

    n_trials = len(rows)
    eeg = np.empty((n_trials, len(fmt.EEG_CHANNELS), n_out), dtype=np.float32)
    eog = np.empty((n_trials, 2, n_out), dtype=np.float32)
    picks = eeg_picks + exg_picks
    for k, (onset, row) in enumerate(zip(playback, rows, strict=True)):
        start, stop = int(onset) - baseline, int(onset) - baseline + length
        if start < 0 or stop > n_times:
            raise DeapInputError(
                path, f"Trial {row.trial}: baseline + {seconds} s playback ({start / sfreq:.2f} s "
                f"to {stop / sfreq:.2f} s) runs outside the recording (0 to {n_times / sfreq:.2f} "
                "s); the file may be cut short", subject=subject)
        lead = min(context, start)
        tail = min(context, n_times - stop)
        lead -= lead % down
        tail -= tail % down
        block = raw.get_data(picks=picks, start=start - lead, stop=stop + tail) * 1e6  # V -> µV
        trial_eeg = block[: len(eeg_picks)]
        trial_eeg = trial_eeg - trial_eeg.mean(axis=0, keepdims=True)  # common average
        exg = block[len(eeg_picks):]
        both = np.concatenate([trial_eeg, exg[[0]] - exg[[1]], exg[[2]] - exg[[3]]])
        resampled = mne.filter.resample(both, down=down, method="polyphase", verbose="error")
        cut = resampled[:, lead // down: lead // down + n_out]
        e = row.experiment_id - 1
        eeg[e] = cut[: len(eeg_picks)]
        eog[e] = cut[len(eeg_picks):]

    by_experiment = sorted(rows, key=lambda r: r.experiment_id)
    ratings = np.array([[r.valence, r.arousal, r.dominance, r.liking] for r in by_experiment])
    return BdfRecording(
        path=path, subject=subject, eeg=eeg, eog=eog, ratings=ratings,
        experiment_id=np.array([r.experiment_id for r in by_experiment], dtype=np.int32),
        presentation_trial=np.array([r.trial for r in by_experiment], dtype=np.int32),
        trial_seconds=float(seconds), channel_order=order, status_channel=names[status_pick],
        playback_onsets_s=playback / sfreq, sfreq=out_sfreq,
    )
