"""The files of a synthetic DEAP folder: ``.dat``, ratings CSV, face videos, BDF, manifest."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from pipeline.readers import deap_format as df
from pipeline.readers.face_truth import FACE_TRUTH_DIR
from pipeline.synth.expression import EXPRESSIVE
from pipeline.synth.face_video import (
    FRAME_H,
    FRAME_W,
    FaceTruth,
    face_truth,
    render,
    scene_background,
)
from pipeline.synth.params import (
    MANIFEST_NAME,
    STREAM_BDF,
    SYNTHETIC_NOTE,
    SynthParams,
    SynthReport,
    stream_rng,
    subject_design,
)
from pipeline.synth.signals import EOG_NOISE_UV, SubjectSignals, subject_signals

# ---------------------------------------------------------------------------------------------
# Writing files


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Write to a sibling temp name and rename on success, so an interrupted run leaves no file that
    looks complete (the temp keeps the suffix: FFmpeg picks the container from it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_video(
    path: Path, frames: Iterator[np.ndarray], n_frames: int, params: SynthParams
) -> None:
    with _atomic(path) as tmp:
        fourcc = cv2.VideoWriter_fourcc(*params.codec)
        writer = cv2.VideoWriter(str(tmp), cv2.CAP_FFMPEG, fourcc, params.fps, (FRAME_W, FRAME_H))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV's FFmpeg backend cannot write {params.codec} to {path}")
        try:
            for frame in frames:
                writer.write(frame)
        finally:
            writer.release()
        _check_video(tmp, n_frames, params.fps)


def _check_video(path: Path, n_frames: int, fps: float) -> None:
    capture = cv2.VideoCapture(str(path))
    try:
        found = (
            int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
            capture.get(cv2.CAP_PROP_FPS),
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()
    if found[0] != n_frames or abs(found[1] - fps) > 1e-3 * fps or found[2:] != (FRAME_W, FRAME_H):
        raise RuntimeError(
            f"{path} reads back as {found[0]} frames at {found[1]} fps, {found[2]}x{found[3]}; "
            f"expected {n_frames} frames at {fps} fps, {FRAME_W}x{FRAME_H}"
        )


def _write_dat(path: Path, signals: SubjectSignals) -> None:
    with _atomic(path) as tmp, tmp.open("wb") as f:
        _dump_python2_pickle(f, {"data": signals.data, "labels": signals.ratings})


_MAT_HEADER_BYTES = 116  # MATLAB v5: 116 bytes of text, then subsystem offset, version, endian


def _write_mat(path: Path, signals: SubjectSignals) -> None:
    """``{'data', 'labels'}`` as a MATLAB v5 file, as DEAP's ``data_preprocessed_matlab`` holds.

    scipy writes the creation time into the header text; a fixed text keeps the file a function
    of the params alone.
    """
    from scipy.io import savemat

    buffer = io.BytesIO()
    savemat(buffer, {"data": signals.data, "labels": signals.ratings}, format="5")
    header = b"MATLAB 5.0 MAT-file, written by pipeline.synth (synthetic DEAP)"
    raw = bytearray(buffer.getvalue())
    raw[:_MAT_HEADER_BYTES] = header.ljust(_MAT_HEADER_BYTES, b" ")
    with _atomic(path) as tmp:
        tmp.write_bytes(bytes(raw))


def _py2_str(raw: bytes) -> bytes:
    if len(raw) < 256:
        return pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw
    return pickle.BINSTRING + struct.pack("<i", len(raw)) + raw


def _py2_int(value: int) -> bytes:
    if 0 <= value < 256:
        return pickle.BININT1 + bytes([value])
    return pickle.BININT + struct.pack("<i", value)


def _dump_python2_pickle(f: BinaryIO, content: dict[str, np.ndarray]) -> None:
    """Write ``content`` (float64 arrays) as Python 2's cPickle protocol 2 wrote DEAP's files.

    Python 3's ``pickle.dump(protocol=2)`` stores bytes as latin-1 text (1.45x larger) and loads
    without ``encoding="latin1"``; DEAP's real files store Python 2 ``str`` (BINSTRING) and
    reference ``numpy.core.multiarray``, so they load only with ``encoding="latin1"`` and raise
    UnicodeDecodeError otherwise. Readers must meet that here too.
    """
    f.write(pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.MARK)
    for key, value in content.items():
        array = np.ascontiguousarray(value, dtype="<f8")
        f.write(b"".join([
            _py2_str(key.encode("ascii")),
            pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n",
            pickle.GLOBAL + b"numpy\nndarray\n", _py2_int(0), pickle.TUPLE1, _py2_str(b"b"),
            pickle.TUPLE3, pickle.REDUCE,
            # __setstate__ args: (version, shape, dtype, is_fortran, raw data)
            pickle.MARK, _py2_int(1),
            pickle.MARK, *(_py2_int(d) for d in array.shape), pickle.TUPLE,
            pickle.GLOBAL + b"numpy\ndtype\n", _py2_str(b"f8"), _py2_int(0), _py2_int(1),
            pickle.TUPLE3, pickle.REDUCE,
            pickle.MARK, _py2_int(3), _py2_str(b"<"), pickle.NONE, pickle.NONE, pickle.NONE,
            _py2_int(-1), _py2_int(-1), _py2_int(0), pickle.TUPLE, pickle.BUILD,
            pickle.NEWFALSE,
        ]))  # fmt: skip
        f.write(pickle.BINSTRING + struct.pack("<i", array.nbytes))
        f.write(memoryview(array).cast("B"))
        f.write(pickle.TUPLE + pickle.BUILD)
    f.write(pickle.SETITEMS + pickle.STOP)


def _ratings_lines(subject: int, params: SynthParams) -> list[str]:
    design = subject_design(subject, params)
    lines = []
    for experiment in np.argsort(design.presentation_order) + 1:
        e = experiment - 1
        familiarity = "" if design.familiarity is None else str(design.familiarity[e])
        fields = [subject, design.presentation_order[e], experiment, design.start_time_us[e]]
        ratings = [f"{r:.2f}" for r in design.ratings[e]]
        lines.append(",".join([*(str(int(v)) for v in fields), *ratings, familiarity]))
    return lines


def _write_text(path: Path, text: str) -> None:
    with _atomic(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def write_synthetic_deap(
    *, out: Path, params: SynthParams, progress: Callable[[str], None] | None = None
) -> SynthReport:
    """Write a synthetic DEAP folder under ``out`` (created if needed; files of the same name are
    replaced, others left alone)."""
    started = time.perf_counter()
    out = Path(out)
    say = progress or (lambda _line: None)
    written: list[Path] = []

    for subject in range(1, params.subjects + 1):
        tag = df.subject_tag(subject)
        signals = subject_signals(subject=subject, params=params)
        if params.format == "mat":
            dat = out / df.PREPROCESSED_MATLAB_DIR / df.mat_name(subject)
            _write_mat(dat, signals)
        else:
            dat = out / df.PREPROCESSED_DIR / df.dat_name(subject)
            _write_dat(dat, signals)
        written.append(dat)
        shape = f"{params.trials} trials x {df.N_CHANNELS} channels x {params.n_samples} samples"
        say(f"{tag}: wrote {dat.relative_to(out)} ({shape})")
        experiment_order = signals.experiment_order
        if params.bdf:
            bdf = out / df.ORIGINAL_DIR / df.bdf_name(subject)
            write_subject_bdf(bdf, signals=signals, params=params)
            written.append(bdf)
            say(f"{tag}: wrote {bdf.relative_to(out)} (48 channels at {df.BDF_SFREQ} Hz)")
        del signals  # the videos need only the order; free ~200 MB at full shape
        if params.videos and subject <= df.LAST_SUBJECT_WITH_VIDEO:
            written += _write_subject_videos(out, subject, experiment_order, params, say)

    csv_path = out / df.METADATA_DIR / df.RATINGS_FILE
    lines = [df.RATINGS_HEADER_LINE]
    for subject in range(1, params.subjects + 1):
        lines += _ratings_lines(subject, params)
    _write_text(csv_path, "\n".join(lines) + "\n")
    written.append(csv_path)
    say(f"wrote {csv_path.relative_to(out)} ({len(lines) - 1} rows)")

    # Last: a manifest means the generator finished.
    manifest = out / MANIFEST_NAME
    _write_text(manifest, json.dumps(_manifest(params), indent=2) + "\n")
    written.append(manifest)

    return SynthReport(
        out=out,
        params=params,
        files=sorted(p.relative_to(out) for p in written),
        total_bytes=sum(p.stat().st_size for p in written),
        seconds=time.perf_counter() - started,
    )


def _write_subject_videos(
    out: Path,
    subject: int,
    experiment_order: np.ndarray,
    params: SynthParams,
    say: Callable[[str], None],
) -> list[Path]:
    tag = df.subject_tag(subject)
    background = scene_background(params.seed, subject)
    written: list[Path] = []
    for trial, experiment in enumerate(experiment_order, start=1):
        name = df.video_name(subject, trial)
        if (subject, trial) in params.missing_videos:
            say(f"{tag}: skipped {name} (listed in missing_videos)")
            continue
        truth = face_truth(subject=subject, experiment_id=int(experiment), params=params)
        path = out / df.VIDEO_DIR / tag / name
        _write_video(path, render(truth, background), truth.n_frames, params)
        written.append(path)
        if params.level is not None:
            written.append(_write_face_truth(out / FACE_TRUTH_DIR / tag / f"{path.stem}.json",
                                             truth))
        say(f"{tag}: wrote {name} ({trial}/{params.trials}, {truth.n_frames} frames)")
    return written


def _write_face_truth(path: Path, truth: FaceTruth) -> Path:
    """Frame times, face boxes, occlusion and planted expression of one video, as JSON (the
    frame index is the list index)."""
    content = {
        "subject": truth.subject, "experiment_id": truth.experiment_id, "fps": truth.fps,
        "times_s": np.round(truth.times, 4).tolist(),
        "face_boxes_xywh": np.round(truth.boxes, 2).tolist(),
        "occluded": truth.occluded.tolist(),
        "expression_mouth_brow": np.round(truth.expression, 4).tolist(),
        "expressive": (np.abs(truth.expression).max(axis=1) > EXPRESSIVE).tolist(),
    }
    _write_text(path, json.dumps(content) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# Raw BDF recordings (data_original/sNN.bdf)

BDF_PHYSICAL_RANGE_UV = (-262144.0, 262143.0)
"""BioSemi's range for every analogue channel: 24-bit, 1/32 µV per step."""
STATUS_RANGE = (-8388608, 8388607)
"""Physical = digital range of the Status channel, so its digital values are the codes."""
STATUS_HIGH_BITS = 0x1E0000
"""Offset written into the high bits of the Status channel of participants >= 24 (DEAP's 24-32
carry such offsets; readers must mask the low 8 bits)."""
STATUS_OFFSET_FROM = 24
STATUS_PULSE_SECONDS = 1 / 64
BDF_REST_SECONDS = 10
"""The recording's 2-min resting baseline, shortened here to keep files small."""
_FILLER_EEG_UV = 8.0
_REFERENCE_DRIFT_UV, _REFERENCE_LINE_UV = 40.0, 3.0


@dataclass(frozen=True)
class BdfTimeline:
    """Where each trial lies in a synthetic BDF (samples at 128 Hz, presentation order)."""

    playback: np.ndarray  # (T,) code-4 sample of Trial 1..T
    events: list[tuple[int, int]]  # (sample, code), time order
    n_samples: int  # whole seconds


def bdf_timeline(*, subject: int, params: SynthParams) -> BdfTimeline:
    """The status timeline: 1 start, 1 rest, then per trial 2 sync, 3 fixation 5 s before
    playback, 4 playback, 5 three s of fixation after it, 1 rating screen; 7 at the end."""
    rng = stream_rng(params.seed, subject, STREAM_BDF)
    fs = df.SFREQ
    events = [(1 * fs, df.STATUS_CODES["start"]), (2 * fs, df.STATUS_CODES["start"])]
    cursor = (3 + BDF_REST_SECONDS) * fs
    playback = []
    for _ in range(params.trials):
        events.append((cursor, df.STATUS_CODES["sync"]))
        fixation = cursor + 2 * fs
        onset = fixation + 5 * fs
        events += [(fixation, df.STATUS_CODES["fixation"]), (onset, df.STATUS_CODES["playback"]),
                   (onset + params.seconds * fs, df.STATUS_CODES["after"]),
                   (onset + (params.seconds + 3) * fs, df.STATUS_CODES["start"])]
        playback.append(onset)
        cursor = onset + (params.seconds + 7) * fs + int(rng.integers(0, 2 * fs))
    events.append((cursor, df.STATUS_CODES["end"]))
    n_samples = -(-(cursor + 2 * fs) // fs) * fs
    return BdfTimeline(playback=np.array(playback), events=events, n_samples=n_samples)


def bdf_channels(
    *, signals: SubjectSignals, params: SynthParams, sfreq: int = df.BDF_SFREQ,
    status_offset: int | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels, (47, N) analogue data in µV and the (N,) Status codes of one synthetic BDF.

    The recording of each trial (``signals.recording``: the .dat rows, before the .dat's common
    average reference in v2; baseline + playback) is placed on the timeline at 128 Hz in
    presentation order, low-level noise fills the gaps, and the whole is upsampled to ``sfreq``
    (``resample_poly``). Every EEG and EXG channel then gets one common reference signal (slow
    drift + 50 Hz line noise) that a common-average or bipolar reference removes: EXG1 - EXG2 =
    hEOG, EXG3 - EXG4 = vEOG, EXG5 - EXG6 = zEMG, EXG7 - EXG8 = tEMG. EEG in Twente order for
    participants 1-22, Geneva order for 23-32.
    """
    from scipy.signal import resample_poly

    subject = signals.subject
    if sfreq % df.SFREQ:
        raise ValueError(f"sfreq must be a multiple of {df.SFREQ}, got {sfreq}")
    factor = sfreq // df.SFREQ
    timeline = bdf_timeline(subject=subject, params=params)
    rng = stream_rng(params.seed, subject, STREAM_BDF, 1)
    recording = signals.recording  # before the .dat's common average reference (v2)
    n128, n_rows = timeline.n_samples, recording.shape[1]
    filler = np.zeros((n_rows, n128))
    filler[:32] = _FILLER_EEG_UV * rng.standard_normal((32, n128))
    filler[32:36] = EOG_NOISE_UV * rng.standard_normal((4, n128))
    filler[36:] = recording[:, 36:].mean(axis=(0, 2))[:, None]
    baseline = df.BASELINE_SAMPLES
    for trial, onset in enumerate(timeline.playback, start=1):
        e = int(np.flatnonzero(signals.presentation_order == trial)[0])
        filler[:, onset - baseline: onset - baseline + recording.shape[2]] = recording[e]
    upsampled = resample_poly(filler, factor, 1, axis=-1)
    n = upsampled.shape[1]
    t = np.arange(n) / sfreq
    reference = (_REFERENCE_DRIFT_UV * np.sin(2 * np.pi * 0.05 * t + rng.uniform(0, 2 * np.pi))
                 + _REFERENCE_LINE_UV * np.sin(2 * np.pi * 50.0 * t))
    twente = subject <= df.LAST_TWENTE_SUBJECT
    eeg_labels = list(df.TWENTE_EEG_ORDER if twente else df.EEG_CHANNELS)
    eeg = upsampled[[df.EEG_CHANNELS.index(name) for name in eeg_labels]] + reference
    heog, veog, zemg, temg = upsampled[32:36]
    exg = np.stack([reference + heog, reference, reference + veog, reference,
                    reference + zemg, reference, reference + temg, reference])
    gsr, resp, plet, temp = upsampled[36:40]
    erg = 0.5 * rng.standard_normal((2, n))
    other = np.stack([gsr, gsr + 0.01 * rng.standard_normal(n), *erg, resp, plet, temp])
    data = np.concatenate([eeg, exg, other])
    if status_offset is None:
        status_offset = STATUS_HIGH_BITS if subject >= STATUS_OFFSET_FROM else 0
    status = np.full(n, status_offset, dtype=np.int64)
    pulse = max(1, round(STATUS_PULSE_SECONDS * sfreq))
    for sample, code in timeline.events:
        status[sample * factor: sample * factor + pulse] = status_offset + code
    labels = [*eeg_labels, *df.EXG_CHANNELS, *df.BDF_OTHER_CHANNELS]
    return labels, data, status


def write_subject_bdf(
    path: Path, *, signals: SubjectSignals, params: SynthParams, sfreq: int = df.BDF_SFREQ,
    status_offset: int | None = None,
) -> None:
    """Write one synthetic ``sNN.bdf`` (48 channels, 24-bit) with edfio; see :func:`bdf_channels`.

    ``sfreq`` and ``status_offset`` exist for tests of the reader (a wrong rate, offset codes).
    """
    labels, data, status = bdf_channels(signals=signals, params=params, sfreq=sfreq,
                                        status_offset=status_offset)
    write_bdf_file(path, labels=labels, data=data, status=status, sfreq=sfreq)


def write_bdf_file(
    path: Path, *, labels: list[str], data: np.ndarray, status: np.ndarray, sfreq: int,
    status_label: str = "Status",
) -> None:
    """Write analogue channels (µV, BioSemi's range) and a Status channel whose digital values
    are ``status`` (physical = digital range) as a 24-bit BDF, atomically."""
    import datetime

    from edfio import Bdf, BdfSignal

    out = [BdfSignal(np.clip(row, *BDF_PHYSICAL_RANGE_UV), sfreq, label=label,
                     physical_dimension="uV", physical_range=BDF_PHYSICAL_RANGE_UV)
           for label, row in zip(labels, data, strict=True)]
    out.append(BdfSignal(status.astype(np.float64), sfreq, label=status_label,
                         physical_dimension="Boolean", physical_range=STATUS_RANGE,
                         digital_range=STATUS_RANGE))
    bdf = Bdf(out, starttime=datetime.time(0, 0, 0), data_record_duration=1)
    with _atomic(path) as tmp:
        bdf.write(tmp)


def _manifest(params: SynthParams) -> dict[str, object]:
    return {
        "synthetic": True,
        "note": SYNTHETIC_NOTE,
        "generator": "pipeline.synth",
        "generator_version": params.generator_version,
        "params": params.model_dump(mode="json"),
        **({"face_truth_dir": FACE_TRUTH_DIR} if params.level is not None and params.videos else {}),
    }
