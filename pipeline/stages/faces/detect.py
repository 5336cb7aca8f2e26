"""Face stage: sample 10 frames per EEG segment, detect the face, crop it, pad it to 224 x 224.

Pure logic on files and numpy arrays (no Zarr, no Prefect); ``flows`` reads the segment table
through the store, calls :func:`faces_for_subject` and commits what it returns.

Frame sampling (:func:`sample_frame_indices`)
    A segment covers ``[start_s, start_s + window_s)`` seconds after video playback began (the
    segment table's ``start_s``; ``window_s`` = 3 s by default). It is split into
    ``frames_per_segment`` (10) equal sub-intervals; frame ``k`` is the video frame on screen at
    the centre of sub-interval ``k``::

        t_k   = offset + start_s + (k + 0.5) * window_s / 10     (seconds since the video began)
        index = floor(t_k * fps + 1e-6), clipped to [0, frame_count - 1]

    ``fps`` and ``frame_count`` are read from each file (never assumed); ``offset`` is 3 s when the
    video starts at the pre-trial baseline and 0 when it starts at playback, decided per file from
    its duration (:func:`pipeline.readers.video.video_alignment`) unless ``FacesParams.video_start``
    overrides it. Frame ``i`` is on screen during ``[i / fps, (i + 1) / fps)``, so every sampled
    frame overlaps its segment, and the 10 frames are strictly increasing whenever a sub-interval is
    at least one frame long (``window_s / 10 >= 1 / fps``: 3 s windows at fps >= 10/3). Clipping
    only matters for a video up to ``VIDEO_DURATION_TOLERANCE_S`` shorter than its trial.

Decoding only the frames needed
    :func:`pipeline.readers.video.read_frames` (PyAV; only the wanted packets of intra-only codecs).

Detection, box and crop
    MediaPipe Tasks ``FaceDetector`` with BlazeFace short-range (``pipeline.weights.face_model``),
    ``RunningMode.IMAGE``, ``min_detection_confidence = min_confidence``; the highest-scoring face
    wins. ``boxes`` stores the face box *before* the margin (x, y, w, h in video pixels). The crop is
    that box grown by ``box_margin`` (10 %) of its width/height on each side, clipped to the frame,
    resized so its longer side is ``crop_size`` (aspect kept; INTER_AREA when shrinking, linear
    when enlarging) and centred on a black ``crop_size`` square ("center padding").

No detection
    A sampled frame without a face (none at or above ``min_confidence``) takes the box of the
    nearest sampled frame *in time* of the same trial that has one (the earlier on a tie); its
    ``detected`` is False and its ``score`` 0. When no sampled frame of the trial has a face, the
    fallback is a centre crop: the box whose grown region is the largest centred square of the
    frame (576 x 576 in a 720 x 576 DEAP video), again with ``detected`` False and ``score`` 0.

Bad videos
    A missing, unreadable, truncated or corrupt video, one shorter than its trial, or one whose
    frame rate gives less than one frame per segment affects only its trial: that trial's segments
    get ``has_video`` False, black crops, zero boxes and scores, and ``detected`` False; the file and
    the reason are listed in ``extra["video_problems"]``. The subject still completes. A video used
    with a caveat (no face in any sampled frame: centre crops; fewer frames per segment than
    sampled: frames repeat) is listed in ``extra["video_warnings"]``. Both reach the run summary as
    warnings (:func:`pipeline.stages.faces.problem_lines`).
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.errors import DeapInputError
from pipeline.readers.face_truth import planted_frames
from pipeline.stages.faces.params import Extra, FacesParams
from pipeline.readers.video import TrialVideo, find_trial_videos, read_frames
from store_schema.contract.layout import FRAMES_PER_SEGMENT

Arrays = dict[str, np.ndarray]
Box = tuple[float, float, float, float]


# --------------------------------------------------------------------------------------------
# Frame sampling
# --------------------------------------------------------------------------------------------


def sample_frame_indices(
    *,
    start_s: np.ndarray,
    window_s: float,
    fps: float,
    offset_s: float,
    frame_count: int,
    n: int = FRAMES_PER_SEGMENT,
) -> np.ndarray:
    """(n_segments, n) frame indices: the frame on screen at the centre of each of ``n`` equal
    sub-intervals of every segment (see the module docstring)."""
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be positive, got {fps}")
    if frame_count < 1:
        raise ValueError(f"frame_count must be >= 1, got {frame_count}")
    starts = np.asarray(start_s, dtype=np.float64).reshape(-1, 1)
    centres = offset_s + starts + (np.arange(n) + 0.5) * (window_s / n)
    return np.clip(np.floor(centres * fps + 1e-6).astype(np.int64), 0, frame_count - 1)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


NATIVE_NOISE = re.compile(
    r"^(INFO: |WARNING: Logging before InitGoogle\(\)|[IW]\d{4} [\d:. ]+\S+ "
    r"(inference_runner_litert|inference_feedback_manager|gl_context)\S*\] )")
"""MediaPipe/LiteRT's native lines at detector start, first inference and close (``INFO: [...]
Creating LiteRT environment``, ``W0000 ... inference_runner_litert.cc] Input tensor memory is
not aligned``): written by C++ straight to file descriptor 2, past Python's logging."""

_NATIVE_STDERR = threading.Lock()


@contextmanager
def native_log_filtered(noise: re.Pattern[str] = NATIVE_NOISE) -> Iterator[None]:
    """File descriptor 2 goes to a temporary file for the block; afterwards everything written
    there except ``noise`` lines (a thread's warning, a real native error) is written to the
    real stderr. One block at a time in this process (detector set-ups of two subjects in
    threads take turns; each is milliseconds)."""
    with _NATIVE_STDERR, tempfile.TemporaryFile() as capture:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no descriptor 2 to borrow: nothing to filter
            yield
            return
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(True)
                    if not noise.match(line)]
            if kept:
                os.write(2, "".join(kept).encode())


class BlazeFace:
    """MediaPipe Tasks ``FaceDetector`` (IMAGE mode): the highest-scoring face of an RGB frame.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, model_path: Path, *, min_confidence: float) -> None:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=float(min_confidence),
        )
        with native_log_filtered():
            self._detector = vision.FaceDetector.create_from_options(options)
        self._first = True

    def detect(self, rgb: np.ndarray) -> tuple[Box | None, float]:
        """(x, y, w, h) in pixels and score of the best face, or (None, 0.0)."""
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                               data=np.ascontiguousarray(rgb))
        if self._first:  # LiteRT says its alignment note at the first inference
            self._first = False
            with native_log_filtered():
                detections = self._detector.detect(image).detections
        else:
            detections = self._detector.detect(image).detections
        if not detections:
            return None, 0.0
        best = max(detections, key=lambda d: d.categories[0].score)
        b = best.bounding_box
        return (float(b.origin_x), float(b.origin_y), float(b.width), float(b.height)), float(
            best.categories[0].score)

    def close(self) -> None:
        with native_log_filtered():
            self._detector.close()

    def __enter__(self) -> BlazeFace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Boxes, crops, padding
# --------------------------------------------------------------------------------------------


def crop_region(box: Box, *, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` of its width/height on each side, clipped to the frame:
    integer (x0, y0, x1, y1), at least one pixel each way."""
    x, y, w, h = box
    x0 = min(max(round(x - margin * w), 0), width - 1)
    y0 = min(max(round(y - margin * h), 0), height - 1)
    x1 = max(min(round(x + w + margin * w), width), x0 + 1)
    y1 = max(min(round(y + h + margin * h), height), y0 + 1)
    return x0, y0, x1, y1


def fallback_box(*, width: int, height: int, margin: float) -> Box:
    """The centre-crop fallback: the box whose grown region is the largest centred square."""
    side = min(width, height) / (1.0 + 2.0 * margin)
    return ((width - side) / 2.0, (height - side) / 2.0, side, side)


def center_pad(image: np.ndarray, *, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """Resize so the longer side is ``size`` (aspect kept) and centre on a black square.

    Linear interpolation, or area averaging when shrinking below half size. ``out``: a
    (size, size, 3) uint8 array to fill instead of a new one.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
    canvas = np.zeros((size, size, 3), dtype=np.uint8) if out is None else out
    x0, y0 = (size - new_w) // 2, (size - new_h) // 2
    if out is not None and (new_w < size or new_h < size):
        canvas[...] = 0
    cv2.resize(image, (new_w, new_h), dst=canvas[y0 : y0 + new_h, x0 : x0 + new_w],
               interpolation=interpolation)
    return canvas


def face_crop(
    frame: np.ndarray, box: Box, *, margin: float, size: int, out: np.ndarray | None = None
) -> np.ndarray:
    """The center-padded ``size`` x ``size`` crop of ``box`` (grown by ``margin``) in ``frame``."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = crop_region(box, margin=margin, width=width, height=height)
    return center_pad(frame[y0:y1, x0:x1], size=size, out=out)


def fill_from_nearest(indices: np.ndarray, detected: np.ndarray) -> np.ndarray | None:
    """For every sampled frame, the position (into ``indices``) of the nearest detected frame in
    time (the earlier on a tie); ``None`` when nothing was detected."""
    have = np.flatnonzero(detected)
    if have.size == 0:
        return None
    order = have[np.argsort(indices[have], kind="stable")]
    times = indices[order]
    right = np.clip(np.searchsorted(times, indices, side="left"), 0, len(order) - 1)
    left = np.clip(right - 1, 0, len(order) - 1)
    take_left = np.abs(indices - times[left]) <= np.abs(times[right] - indices)
    return np.where(take_left, order[left], order[right])


# --------------------------------------------------------------------------------------------
# The subject
# --------------------------------------------------------------------------------------------


@dataclass
class _Timings:
    decode: float = 0.0
    detect: float = 0.0
    crop: float = 0.0

    @contextmanager
    def add(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, name, getattr(self, name) + time.perf_counter() - started)


def empty_face_arrays(n_segments: int, *, frames: int, size: int) -> Arrays:
    """Arrays of the schema for ``n_segments`` segments without video."""
    return {
        "crops": np.zeros((n_segments, frames, size, size, 3), dtype=np.uint8),
        "detected": np.zeros((n_segments, frames), dtype=bool),
        "boxes": np.zeros((n_segments, frames, 4), dtype=np.float32),
        "scores": np.zeros((n_segments, frames), dtype=np.float32),
        "has_video": np.zeros(n_segments, dtype=bool),
        "frame_index": np.full((n_segments, frames), -1, dtype=np.int32),
    }


def faces_for_subject(
    *,
    videos: Sequence[TrialVideo],
    trial_index: np.ndarray,
    start_s: np.ndarray,
    window_s: float,
    params: FacesParams,
    model_path: Path,
    progress: Callable[..., None] | None = None,
) -> tuple[Arrays, Extra]:
    """Crops, detection flags, boxes and scores of every segment of one subject.

    ``trial_index`` and ``start_s`` are the segment table's columns; ``videos`` holds one
    :class:`TrialVideo` per trial (a trial without an entry counts as having no video).
    ``progress(line, done=, total=, unit="frames")`` is told each trial's outcome and the
    sampled frames done so far (:class:`store_schema.contract.table.StageProgress`).
    """
    frames_total = len(trial_index) * params.frames_per_segment
    frames_done = 0

    def say(line: str) -> None:
        if progress is not None:
            progress(line, done=frames_done, total=frames_total, unit="frames")

    trial_index = np.asarray(trial_index)
    n_seg, n = len(trial_index), params.frames_per_segment
    arrays = empty_face_arrays(n_seg, frames=n, size=params.crop_size)
    by_trial = {v.trial_index: v for v in videos}
    problems: list[dict[str, str]] = []
    warnings: list[dict[str, str]] = []
    trials_info: list[dict[str, Any]] = []
    timings = _Timings()
    counts = {"frames": 0, "detected": 0, "borrowed": 0, "center_fallback": 0}
    trial_ids = [int(t) for t in dict.fromkeys(trial_index.tolist())]

    if progress is not None:
        progress(done=0, total=frames_total, unit="frames")
    with BlazeFace(model_path, min_confidence=params.min_confidence) as detector:
        for done, trial in enumerate(trial_ids, start=1):
            rows = np.flatnonzero(trial_index == trial)
            frames_done += len(rows) * n  # said after the trial, whatever its outcome
            video = by_trial.get(trial)
            if video is None or not video.usable:
                reason = video.problem if video is not None else "no video listed for this trial"
                problems.append({"file": video.file if video else f"trial index {trial}",
                                 "path": str(video.path) if video and video.path else "",
                                 "reason": reason or "unusable"})
                say(f"trial {done}/{len(trial_ids)}: no usable video ({reason})")
                continue
            assert video.video is not None
            where = {"file": video.file, "path": str(video.path)}
            too_slow, repeats = frame_rate_check(video.video.fps, window_s=window_s, n=n)
            if too_slow:
                problems.append({**where, "reason": too_slow})
                say(f"trial {done}/{len(trial_ids)}: {video.file} unusable ({too_slow})")
                continue
            try:
                info = _one_trial(video, rows, start_s=np.asarray(start_s)[rows], window_s=window_s,
                                  params=params, detector=detector, arrays=arrays, timings=timings)
            except DeapInputError as err:
                arrays_reset = empty_face_arrays(len(rows), frames=n, size=params.crop_size)
                for name, value in arrays_reset.items():
                    arrays[name][rows] = value
                problems.append({**where, "reason": err.problem})
                say(f"trial {done}/{len(trial_ids)}: {video.file} unusable ({err.problem})")
                continue
            if repeats:
                warnings.append({**where, "reason": repeats})
            if video.warning:
                warnings.append({**where, "reason": video.warning})
            if info["detected"] == 0:
                warnings.append({**where, "reason": (
                    f"no face found in any sampled frame (min_confidence {params.min_confidence:g}): "
                    "centre crops used, frames marked not detected")})
            for key in counts:
                counts[key] += info[key]
            trials_info.append(info)
            say(f"trial {done}/{len(trial_ids)}: {video.file} {info['detected_fraction']:.0%} detected")

    extra: Extra = {
        "n_segments": n_seg,
        "segments_with_video": int(arrays["has_video"].sum()),
        **counts,
        "detected_fraction": round(counts["detected"] / counts["frames"], 4) if counts["frames"] else 0.0,
        "video_problems": problems,
        "video_warnings": warnings,
        "trials": trials_info,
        "window_s": float(window_s),
        "timings_s": {k: round(v, 3) for k, v in vars(timings).items()},
    }
    return arrays, extra


def _one_trial(
    video: TrialVideo,
    rows: np.ndarray,
    *,
    start_s: np.ndarray,
    window_s: float,
    params: FacesParams,
    detector: BlazeFace,
    arrays: Arrays,
    timings: _Timings,
) -> dict[str, Any]:
    assert video.video is not None and video.path is not None
    info = video.video
    indices = sample_frame_indices(start_s=start_s, window_s=window_s, fps=info.fps,
                                   offset_s=video.offset_s, frame_count=info.frame_count,
                                   n=params.frames_per_segment)
    unique = np.unique(indices)
    with timings.add("decode"):
        frames = read_frames(video.path, unique.tolist(), fps=info.fps)

    boxes = np.zeros((len(unique), 4))
    scores = np.zeros(len(unique))
    found = np.zeros(len(unique), dtype=bool)
    with timings.add("detect"):
        for k, index in enumerate(unique):
            box, score = detector.detect(frames[int(index)])
            if box is not None:
                boxes[k], scores[k], found[k] = box, score, True
    nearest = fill_from_nearest(unique, found)
    height, width = frames[int(unique[0])].shape[:2]
    if nearest is None:
        used = np.tile(fallback_box(width=width, height=height, margin=params.box_margin),
                       (len(unique), 1))
    else:
        used = boxes[nearest]

    where = np.searchsorted(unique, indices)  # (segments, n) -> position in unique
    with timings.add("crop"):
        crops = arrays["crops"]
        for (r, f), k in np.ndenumerate(where):  # straight into the output: no extra copies
            face_crop(frames[int(unique[k])], tuple(used[k]), margin=params.box_margin,
                      size=params.crop_size, out=crops[rows[r], f])
    arrays["detected"][rows] = found[where]
    arrays["boxes"][rows] = used[where]
    arrays["scores"][rows] = scores[where]
    arrays["has_video"][rows] = True
    arrays["frame_index"][rows] = indices
    n_frames = indices.size
    n_detected = int(found[where].sum())
    return {
        "file": video.file,
        "trial_index": int(video.trial_index),
        "video_start": video.video_start,
        "offset_s": float(video.offset_s),
        "fps": info.fps,
        "frame_count": info.frame_count,
        "detected_fraction": round(n_detected / n_frames, 4),
        "frames": n_frames,
        "detected": n_detected,
        "borrowed": n_frames - n_detected if nearest is not None else 0,
        "center_fallback": n_frames if nearest is None else 0,
    }


def subject_faces(
    *,
    video_dir: Path | None,
    subject: int,
    trial_index: np.ndarray,
    presentation_trial: np.ndarray,
    start_s: np.ndarray,
    trial_seconds: float,
    window_s: float,
    params: FacesParams,
    model_path: Path,
    truth_dir: Path | None = None,
    progress: Callable[..., None] | None = None,
) -> tuple[Arrays, Extra]:
    """The face stage of one subject from its segment table: probe, align and read its videos.

    ``trial_index``, ``presentation_trial`` and ``start_s`` are the segment table's columns;
    ``trial_seconds`` is the trial length after the baseline (decides each video's alignment).
    ``truth_dir``: a synthetic folder's ``synth_face_truth`` (:mod:`pipeline.readers.face_truth`); its
    expressive frames among the sampled ones go to ``extra["planted_frames"]``.
    """
    pairs = sorted({(int(t), int(p)) for t, p in zip(np.asarray(trial_index).tolist(),
                                                      np.asarray(presentation_trial).tolist())})
    videos = find_trial_videos(video_dir=video_dir, subject=subject, trials=pairs,
                               trial_seconds=trial_seconds, video_start=params.override)
    arrays, extra = faces_for_subject(videos=videos, trial_index=trial_index, start_s=start_s,
                                      window_s=window_s, params=params, model_path=model_path,
                                      progress=progress)
    if truth_dir is not None:
        used = {int(t["trial_index"]): t["file"] for t in extra["trials"]}
        files = [used.get(int(t)) if ok else None
                 for t, ok in zip(np.asarray(trial_index).tolist(), arrays["has_video"])]
        planted, problem = planted_frames(truth_dir, subject=subject, files=files,
                                          frame_index=arrays["frame_index"])
        if planted is not None:
            extra["planted_frames"] = planted
        else:
            extra["planted_frames_missing"] = problem
    return arrays, extra


def frame_rate_check(fps: float, *, window_s: float, n: int) -> tuple[str | None, str | None]:
    """``(problem, warning)`` of sampling ``n`` frames per ``window_s`` s segment at ``fps``.

    Less than one frame per segment: the trial is unusable (a frame rate that low is a wrong
    header, and every sampled frame would be the same). Fewer than ``n``: a warning, sampled
    frames repeat within a segment.
    """
    per_window = fps * window_s
    if per_window < 1:
        return (f"the file reports {fps:g} fps: less than one frame per {window_s:g} s segment "
                "(a wrong frame rate in its header?)"), None
    if per_window < n:
        return None, (f"{fps:g} fps gives {per_window:.3g} frames per {window_s:g} s segment, "
                      f"fewer than the {n} sampled: frames repeat")
    return None, None


def faces_stage(*, model_path: Path, model_sha256: str, **kwargs: Any) -> tuple[dict[str, np.ndarray], Extra]:
    """The faces stage as the stage table runs it: :func:`subject_faces`, with the BlazeFace
    model it used (path and sha256) in the record."""
    arrays, extra = subject_faces(model_path=model_path, **kwargs)
    extra["model"] = {"path": str(model_path), "sha256": model_sha256}
    return arrays, extra
