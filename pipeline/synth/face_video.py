"""Face videos: where the face is in every frame (the ground truth), and the frames themselves.

Notation: ``V``, ``A`` = the trial's valence and arousal ratings; ``S`` = ``params.seconds``; trial
time ``tau`` = seconds since the start of the 3 s baseline (sample ``k`` is at ``tau = k / 128``).

    (x, y, w, h; found by eye and confirmed by skimage's LBP face cascade at (175, 70, 93, 93)).
    The head crop ``PHOTO_CROP = (146, 14, 156, 186)``, lightly blurred (sigma 0.8) and with an
    8 px feathered edge, is pasted on a mid-grey, smoothly textured, vignetted background (drawn
    once per subject). Frame ``i`` of a video shows trial time ``tau = i / fps`` (video_start
    "baseline", duration 3 + S s) or ``tau = 3 + i / fps`` ("playback", S s); frame count =
    ``round(duration * fps)``. Per trial (seeded by subject and Experiment_id):

    - Path: face-crop centre at (360 + 110 sin(2 pi tau / Px + .), 288 + 45 sin(2 pi tau / Py + .))
      with Px ~ U(9, 14) s, Py ~ U(6, 10) s; scale 1 + 0.2 sin(2 pi tau / Ps + .), Ps ~ U(12, 20) s,
      on a base where the face box is 190 px tall (152..228 px).
    - Lighting: whole-frame brightness gain 1 + 0.15 sin(2 pi tau / Pl + .), Pl ~ U(7, 12) s.
    - Rating cues, from tau = 3 on (neutral before): colour tint, red x ``1 + 0.03 * (V - 5)``,
      blue x ``1 - 0.03 * (V - 5)`` (warm for high valence, cool for low); contrast about grey 128
      x ``1 + 0.0625 * (A - 5)`` (0.75 at A=1, 1.25 at A=9).
    - Occlusion: 2 intervals of 0.3 s (at least one frame), starting at U(0.2, 0.4) * S and
      U(0.6, 0.8) * S seconds into playback (so both video_start modes contain them): an opaque
      ``OCCLUDER_BGR`` rectangle covers the face box grown by 25 % on every side.

    ``face_truth`` returns all of this per frame and ``render_video_frames`` the exact frames
    before compression; the renderer draws from the truth, so they cannot disagree. skimage's LBP
    frontal-face cascade (on frames halved to 360x288) finds the face in 384/384 sampled visible
    frames of 8 mp4v videos (median IoU with the truth box 0.87) and nothing in 48/48 occluded ones.

Codec and measured cost (2-core machine shared with another busy process, OpenCV 5.0)
======================================================================================
OpenCV's FFmpeg writer ignores ``VIDEOWRITER_PROP_QUALITY`` and passes no options to the encoder
(``avcodec_open2(..., NULL)``; ``OPENCV_FFMPEG_WRITER_OPTIONS`` changes nothing for MJPG), so
its MJPG cannot be made smaller; OpenCV's own MJPEG writer (``CAP_OPENCV_MJPEG``) honours the
quality but is larger than FFmpeg's at every usable setting (~23-40 KB/frame at quality 15-50 vs
FFmpeg's ~17 KB). Hence ``DEFAULT_CODEC = "mp4v"``. Measured ``write_synthetic_deap`` (wall
seconds, bytes on disk):

- One subject at DEAP's full shape (40 trials x 60 s, 50 fps, video_start "baseline"):
  mp4v 338-415 s: 402 MB in all: 40 videos 299 MB (7.5 MB each), .dat 103 MB, CSV 1.7 KB.
  MJPG 463 s: 40 videos 2126 MB (53 MB each), same .dat and CSV.
- Defaults (2 subjects x 8 trials x 12 s, 50 fps):
  mp4v 43 s: 38.9 MB in all (16 videos 29.1 MB, two .dat 9.8 MB, CSV 701 B).
  MJPG 68 s: 211 MB in all (16 videos 201 MB).

About 3 ms per frame go to rendering and encoding; the EEG of a full subject takes ~3 s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from pipeline.readers import deap_format as df
from pipeline.synth.expression import expression_timeline, warp_expression
from pipeline.synth.params import (
    STREAM_FACE,
    STREAM_LOOK,
    STREAM_SCENE,
    SynthParams,
    stream_rng,
    subject_design,
)
from pipeline.synth.shapes import sinusoid, unit_std

FRAME_W, FRAME_H = 720, 576
PHOTO_FACE_BOX = (176, 68, 96, 104)
"""Face in ``skimage.data.astronaut()`` (512x512): x, y, w, h in pixels."""
PHOTO_CROP = (146, 14, 156, 186)
"""Head crop of the photograph that is pasted into each frame: x, y, w, h in pixels."""
BASE_FACE_HEIGHT = 190.0
OCCLUDER_BGR = (30, 30, 30)
OCCLUSION_SECONDS = 0.3
OCCLUDER_GROW = 0.25

TINT_VALENCE_SLOPE = 0.03
CONTRAST_AROUSAL_SLOPE = 0.0625


# ---------------------------------------------------------------------------------------------
# Face video: ground truth per frame


@dataclass(frozen=True)
class FaceTruth:
    """Per-frame truth of one face video (frame i of the file is row i)."""

    subject: int
    experiment_id: int
    fps: float
    times: np.ndarray
    """(F,) trial time tau (s since the start of the baseline) shown by each frame."""
    boxes: np.ndarray
    """(F, 4) float64 face box x, y, w, h in pixels of the 720x576 frame."""
    occluded: np.ndarray
    """(F,) bool: the face is hidden behind an opaque ``OCCLUDER_BGR`` rectangle."""
    occluders: np.ndarray
    """(F, 4) int64 x, y, w, h of that rectangle (zeros where not occluded)."""
    photo_boxes: np.ndarray
    """(F, 4) int64 x, y, w, h where the head crop of the photograph is pasted."""
    brightness: np.ndarray
    """(F,) lighting gain."""
    tint_bgr: np.ndarray
    """(F, 3) colour multipliers (B, G, R): the valence cue."""
    contrast: np.ndarray
    """(F,) contrast about grey 128: the arousal cue (v2: random, label-independent)."""
    expression: np.ndarray
    """(F, 2) signed mouth, brow intensities in [-1, 1] (v2's cue; zeros in v1), see
    ``pipeline.synth.expression``."""
    expression_px: np.ndarray
    """(F, 2) the same as displacements of the landmarks, in photograph pixels (+: up)."""

    @property
    def n_frames(self) -> int:
        return len(self.times)


def face_truth(*, subject: int, experiment_id: int, params: SynthParams) -> FaceTruth:
    """Where the face is in every frame of the video of ``experiment_id``, and what hides it."""
    if not 1 <= subject <= df.LAST_SUBJECT_WITH_VIDEO:
        last = df.LAST_SUBJECT_WITH_VIDEO
        raise ValueError(f"subject {subject} has no face video (only 1..{last})")
    if not 1 <= experiment_id <= params.trials:
        raise ValueError(f"experiment_id must be 1..{params.trials}, got {experiment_id}")
    rng = stream_rng(params.seed, subject, STREAM_FACE, experiment_id)
    offset = 0.0 if params.video_start == "baseline" else float(df.BASELINE_SECONDS)
    tau = offset + np.arange(params.video_frames) / params.fps

    crop_x, crop_y, crop_w, crop_h = PHOTO_CROP
    face_x, face_y, face_w, face_h = PHOTO_FACE_BOX
    centre_x = FRAME_W / 2 + 110.0 * sinusoid(rng, tau, (9.0, 14.0))
    centre_y = FRAME_H / 2 + 45.0 * sinusoid(rng, tau, (6.0, 10.0))
    scale = BASE_FACE_HEIGHT / face_h * (1.0 + 0.2 * sinusoid(rng, tau, (12.0, 20.0)))
    brightness = 1.0 + 0.15 * sinusoid(rng, tau, (7.0, 12.0))

    w = np.round(crop_w * scale).astype(np.int64)
    h = np.round(crop_h * scale).astype(np.int64)
    x = np.round(centre_x - w / 2).astype(np.int64)
    y = np.round(centre_y - h / 2).astype(np.int64)
    sx, sy = w / crop_w, h / crop_h  # the scale the integer paste size really applies
    boxes = np.column_stack(
        [x + (face_x - crop_x) * sx, y + (face_y - crop_y) * sy, face_w * sx, face_h * sy]
    )

    fractions = np.array([rng.uniform(0.2, 0.4), rng.uniform(0.6, 0.8)])
    playback = df.BASELINE_SECONDS + params.seconds * fractions
    length = max(OCCLUSION_SECONDS, 1.0 / params.fps)
    occluded = np.any((tau[:, None] >= playback) & (tau[:, None] < playback + length), axis=1)
    grow = OCCLUDER_GROW * boxes[:, 2:]
    x0y0 = np.maximum(np.floor(boxes[:, :2] - grow), 0)
    x1y1 = np.minimum(np.ceil(boxes[:, :2] + boxes[:, 2:] + grow), [FRAME_W, FRAME_H])
    rectangles = np.column_stack([x0y0, x1y1 - x0y0])
    occluders = np.where(occluded[:, None], rectangles, 0).astype(np.int64)

    valence, arousal = subject_design(subject, params).ratings[experiment_id - 1, :2]
    level = params.level
    if level is None:
        cue = tau >= df.BASELINE_SECONDS
        warm = TINT_VALENCE_SLOPE * (valence - 5.0)
        tint = np.where(cue[:, None], [1.0 - warm, 1.0, 1.0 + warm], 1.0)
        contrast = np.where(cue, 1.0 + CONTRAST_AROUSAL_SLOPE * (arousal - 5.0), 1.0)
        expression = np.zeros((len(tau), 2))
        expression_px = expression
    else:
        look_rng = stream_rng(params.seed, subject, STREAM_LOOK, experiment_id)
        tint, contrast, brightness = _random_look(rng=look_rng, tau=tau, brightness=brightness)
        expression = expression_timeline(level=level, seed=params.seed, subject=subject,
                                         experiment_id=experiment_id, tau=tau, valence=valence,
                                         arousal=arousal)
        expression_px = expression * [level.mouth_px, level.brow_px]
    return FaceTruth(
        subject=subject,
        experiment_id=experiment_id,
        fps=params.fps,
        times=tau,
        boxes=boxes,
        occluded=occluded,
        occluders=occluders,
        photo_boxes=np.column_stack([x, y, w, h]),
        brightness=brightness,
        tint_bgr=tint,
        contrast=contrast,
        expression=expression,
        expression_px=expression_px,
    )


def _random_look(
    *, rng: np.random.Generator, tau: np.ndarray, brightness: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """v2: colour tint, contrast and lighting level drawn per trial and drifting slowly within it,
    independent of the ratings (so whole-frame colour statistics cannot predict them)."""
    tint = (1.0 + 0.05 * rng.standard_normal(3)
            + 0.02 * np.column_stack([sinusoid(rng, tau, (8.0, 15.0)) for _ in range(3)]))
    contrast = 1.0 + 0.12 * rng.standard_normal() + 0.05 * sinusoid(rng, tau, (8.0, 15.0))
    level = 1.0 + 0.1 * rng.standard_normal()
    return tint, np.clip(contrast, 0.6, 1.4), brightness * level


# ---------------------------------------------------------------------------------------------
# Face video: rendering


def _smooth_field(rng: np.random.Generator, cell: int) -> np.ndarray:
    """(H, W) unit-std noise with features about ``cell`` pixels wide."""
    rows, cols = FRAME_H // cell + 3, FRAME_W // cell + 3
    coarse = rng.standard_normal((rows, cols)).astype(np.float32)
    fine = cv2.resize(coarse, (cols * cell, rows * cell), interpolation=cv2.INTER_CUBIC)
    window = fine[cell : cell + FRAME_H, cell : cell + FRAME_W]
    return unit_std(window.ravel()).reshape(FRAME_H, FRAME_W)


@lru_cache(maxsize=4)
def scene_background(seed: int, subject: int) -> np.ndarray:
    """The subject's static scene: mid-grey, smooth texture, vignette, slight colour cast."""
    rng = stream_rng(seed, subject, STREAM_SCENE)
    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)
    dx, dy = (xx - FRAME_W / 2) / (FRAME_W / 2), (yy - FRAME_H / 2) / (FRAME_H / 2)
    vignette = 1.0 - 0.35 * (dx**2 + dy**2)
    level = rng.uniform(85, 105)
    grey = (level + 14 * _smooth_field(rng, 96) + 5 * _smooth_field(rng, 24)) * vignette
    cast = rng.uniform(0.95, 1.05, 3)
    image = np.clip(grey[:, :, None] * cast, 0, 255).astype(np.uint8)
    image.flags.writeable = False
    return image


@lru_cache(maxsize=1)
def head_photo() -> tuple[np.ndarray, np.ndarray]:
    """The head crop (BGR; lightly blurred, as the upscaled face then costs ~20 % fewer bytes per
    frame) and its feathered alpha mask."""
    from skimage.data import astronaut

    x, y, w, h = PHOTO_CROP
    bgr = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    crop = cv2.GaussianBlur(bgr, (0, 0), 0.8)[y : y + h, x : x + w].copy()
    feather = 8
    ramp_x = np.clip(np.minimum(np.arange(w), np.arange(w)[::-1]) / feather, 0, 1)
    ramp_y = np.clip(np.minimum(np.arange(h), np.arange(h)[::-1]) / feather, 0, 1)
    mask = np.outer(ramp_y, ramp_x).astype(np.float32)
    return crop, mask


def colour_lut(brightness: float, contrast: float, tint_bgr: np.ndarray) -> np.ndarray:
    level = np.arange(256, dtype=np.float64)[:, None]
    out = tint_bgr[None, :] * (contrast * (brightness * level - 128.0) + 128.0)
    return np.clip(np.round(out), 0, 255).astype(np.uint8).reshape(1, 256, 3)


def render_video_frames(
    *, subject: int, experiment_id: int, params: SynthParams
) -> Iterator[np.ndarray]:
    """The BGR frames, before compression, of the video of ``experiment_id``."""
    truth = face_truth(subject=subject, experiment_id=experiment_id, params=params)
    return render(truth, scene_background(params.seed, subject))


def render(
    truth: FaceTruth, background: np.ndarray, frames: Iterable[int] | None = None
) -> Iterator[np.ndarray]:
    """Frames ``frames`` (default: all, in order) of the video ``truth`` describes."""
    crop, mask = head_photo()
    for i in range(truth.n_frames) if frames is None else frames:
        frame = background.copy()
        x, y, w, h = (int(v) for v in truth.photo_boxes[i])
        mouth_px, brow_px = (float(v) for v in truth.expression_px[i])
        face = warp_expression(crop, mouth_px=mouth_px, brow_px=brow_px)
        patch = cv2.resize(face, (w, h), interpolation=cv2.INTER_LINEAR)
        alpha = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        region = frame[y : y + h, x : x + w]
        frame[y : y + h, x : x + w] = cv2.blendLinear(patch, region, alpha, 1.0 - alpha)
        lut = colour_lut(truth.brightness[i], truth.contrast[i], truth.tint_bgr[i])
        frame = cv2.LUT(frame, lut)
        if truth.occluded[i]:
            ox, oy, ow, oh = (int(v) for v in truth.occluders[i])
            cv2.rectangle(frame, (ox, oy), (ox + ow - 1, oy + oh - 1), OCCLUDER_BGR, thickness=-1)
        yield frame
