"""Face videos of DEAP trials: probing, alignment with the trial, pairing, reading frames.

Shared by the DEAP reader (``pipeline.readers.deap``: what a folder holds) and the face stage
(``pipeline.stages.faces.detect``: which frames to crop).

* :func:`probe_video` reads fps, frame count and size from a video file instead of assuming them.
* :func:`video_alignment` decides where a video starts. ``shared/DEAP_FORMAT.md`` leaves it
  unconfirmed: a video whose duration covers the 3 s baseline plus the trial is taken to start at
  the baseline, one that covers only the trial to start at playback; an explicit override wins.
  A duration that is neither about baseline + trial (63 s in DEAP) nor about the trial (60 s)
  makes that choice a guess: :func:`duration_warning` says so, naming the file and its duration.
* :func:`find_trial_videos` pairs every trial (``.dat`` index, presentation order) with its file
  ``face_video/sNN/sNN_trialTT.avi`` (TT = presentation order), probed and aligned, or with the
  reason it cannot be used. It never raises for a bad file.
* :func:`read_frames` decodes only the wanted frames.


Decoding only the frames needed (:func:`read_frames`)
    Intra-only codecs (DEAP's DV, MJPG: every packet a whole frame): PyAV seeks to each wanted
    frame, maps packets to frame indices by their ``pts`` and the stream's time base, and reads and
    decodes only the wanted packets (a file that cannot be seeked is demuxed packet by packet,
    still decoding only the wanted ones). Other codecs (the synthetic mp4v, GOP 12): frames are
    decoded in order up to the last wanted one, and only the wanted ones are converted to RGB.
    Frames equal OpenCV's pixel for pixel on MJPG and mp4v (tested). PyAV, not OpenCV, because
    OpenCV 5.0 returns near-black frames (with ``ok`` True) for interlaced PAL DV, which is what
    DEAP's camera recorded ("Cannot convert interlaced to progressive frames" from swscale).
    A damaged frame that FFmpeg conceals is decoded as concealed (and usually not detected).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, computed_field

from pipeline.readers import deap_format as fmt
from pipeline.errors import DeapInputError

VideoStart = Literal["baseline", "playback"]

VIDEO_DURATION_TOLERANCE_S = 0.5
"""A video may be this much shorter than what it should cover (frame rounding, dropped frames)."""


class VideoInfo(BaseModel):
    """What a video file says about itself (never assumed: DEAP's fps is unconfirmed)."""

    model_config = ConfigDict(frozen=True)

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int

    @computed_field  # type: ignore[prop-decorator] - pydantic's documented idiom
    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps


def probe_video(path: Path | str) -> VideoInfo:
    """Open a video with OpenCV, read its header, and decode its first and last frames.

    Decoding the last frame catches files cut short after their header was written.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DeapInputError(path, "video file not found")
    if path.stat().st_size == 0:
        raise DeapInputError(path, "empty video file (0 bytes)")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DeapInputError(path, "cannot be opened as a video (unknown container or codec)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if frames <= 0:
            raise DeapInputError(path, "video has no frames")
        if not math.isfinite(fps) or fps <= 0:
            raise DeapInputError(path, f"video reports an invalid frame rate ({fps})")
        ok, _ = cap.read()
        if not ok:
            raise DeapInputError(path, "the first frame cannot be decoded")
        cap.set(cv2.CAP_PROP_POS_FRAMES, frames - 1)
        ok, _ = cap.read()
        if not ok:
            raise DeapInputError(
                path, f"header says {frames} frames but the last one cannot be decoded "
                "(truncated file?)")
    finally:
        cap.release()
    return VideoInfo(path=path, fps=fps, frame_count=frames, width=width, height=height)


def duration_warning(video: VideoInfo, *, trial_seconds: float, start: VideoStart) -> str | None:
    """Why ``video``'s alignment is a guess: its duration is neither about the baseline plus the
    trial (63 s in DEAP) nor about the trial alone (60 s); ``None`` when it is one of them."""
    expected = (trial_seconds + fmt.BASELINE_SECONDS, trial_seconds)
    if any(abs(video.duration_s - e) <= VIDEO_DURATION_TOLERANCE_S for e in expected):
        return None
    offset = fmt.BASELINE_SECONDS if start == "baseline" else 0
    return (f"video is {video.duration_s:.2f} s long ({video.frame_count} frames at {video.fps:g} "
            f"fps), neither about {expected[0]:g} s (baseline + trial) nor about {expected[1]:g} s "
            f"(trial only): taken to start at the {start} ({offset} s before playback); check the "
            "file or set video_start")


def video_alignment(
    video: VideoInfo, *, trial_seconds: float, override: VideoStart | None = None
) -> VideoStart:
    """Whether ``video`` starts at the 3 s pre-trial baseline or at playback.

    Decided from its duration: long enough for baseline + trial → ``baseline``; long enough for
    the trial only → ``playback``; shorter → :class:`DeapInputError`. ``override`` skips the
    guess but not the length check.
    """
    with_baseline = trial_seconds + fmt.BASELINE_SECONDS - VIDEO_DURATION_TOLERANCE_S
    trial_only = trial_seconds - VIDEO_DURATION_TOLERANCE_S
    needed = with_baseline if override == "baseline" else trial_only
    if video.duration_s < needed:
        raise DeapInputError(
            video.path, f"video is {video.duration_s:.2f} s long ({video.frame_count} frames at "
            f"{video.fps:g} fps), shorter than the {trial_seconds:g} s trial"
            + (" plus its 3 s baseline" if override == "baseline" else ""))
    if override is not None:
        return override
    return "baseline" if video.duration_s >= with_baseline else "playback"


@dataclass(frozen=True)
class TrialVideo:
    """The video of one trial, probed, or why it cannot be used."""

    trial_index: int
    """0-based ``.dat`` trial index (= Experiment_id - 1), as in the segment table."""
    file: str
    """Expected file name, e.g. ``s01_trial03.avi`` (presentation order)."""
    path: Path | None
    video: VideoInfo | None = None
    video_start: VideoStart | None = None
    """``None`` when unusable or when the trial length was not known (no alignment decided)."""
    problem: str | None = None
    """Why the trial has no usable video (``None``: usable)."""
    warning: str | None = None
    """A caveat of a usable video (its duration makes the alignment a guess)."""
    exists: bool = False
    """The file is there (a ``problem`` is then about its content, not its absence)."""

    @property
    def usable(self) -> bool:
        return self.problem is None and self.video is not None and self.video_start is not None

    @property
    def offset_s(self) -> float:
        """Seconds of video before playback began."""
        return float(fmt.BASELINE_SECONDS) if self.video_start == "baseline" else 0.0


def video_path(video_dir: Path | None, subject: int, presentation_trial: int) -> Path | None:
    """Where the face video of a trial (presentation order) should be."""
    if video_dir is None:
        return None
    return video_dir / fmt.subject_tag(subject) / fmt.video_name(subject, presentation_trial)


def find_trial_videos(
    *,
    video_dir: Path | None,
    subject: int,
    trials: Sequence[tuple[int, int]],
    trial_seconds: float | None,
    video_start: VideoStart | None = None,
) -> list[TrialVideo]:
    """Probe the video of every ``(trial_index, presentation_trial)``; never raises for a bad file.

    Reads only the videos' headers and first/last frames (no EEG). ``trial_seconds`` (the trial
    length after the baseline) decides each video's alignment; ``None`` only probes.
    """
    found = []
    for trial_index, presentation in trials:
        name = fmt.video_name(subject, presentation)
        path = video_path(video_dir, subject, presentation)
        if subject > fmt.LAST_SUBJECT_WITH_VIDEO and (path is None or not path.exists()):
            problem = f"DEAP filmed participants 1-{fmt.LAST_SUBJECT_WITH_VIDEO} only"
        elif path is None:
            problem = f"no {fmt.VIDEO_DIR}/ folder found"
        elif not path.exists():
            problem = "video file not found"
        else:
            try:
                info = probe_video(path)
                start = None if trial_seconds is None else video_alignment(
                    info, trial_seconds=trial_seconds, override=video_start)
            except DeapInputError as err:
                problem = err.problem
            else:
                warning = None if start is None else duration_warning(
                    info, trial_seconds=float(trial_seconds), start=start)
                found.append(TrialVideo(trial_index=trial_index, file=name, path=path, video=info,
                                        video_start=start, exists=True, warning=warning))
                continue
        found.append(TrialVideo(trial_index=trial_index, file=name, path=path, problem=problem,
                                exists=path is not None and path.exists()))
    return found


def expected_videos(
    video_dir: Path | None, subject: int, presentation_trials: Sequence[int]
) -> dict[str, Path | None]:
    """File name → expected path of the video of every presentation-order trial (sorted)."""
    trials = sorted({int(t) for t in presentation_trials})
    return {fmt.video_name(subject, t): video_path(video_dir, subject, t) for t in trials}


def read_frames(
    path: Path, indices: Sequence[int], *, fps: float, stats: dict[str, Any] | None = None,
    seek: bool = True,
) -> dict[int, np.ndarray]:
    """RGB uint8 (H, W, 3) frames ``indices`` of a video, decoding only what is needed.

    Raises :class:`DeapInputError` naming the file when it cannot be opened or decoded, or when a
    wanted frame is not in it (truncated file). ``stats``, when given, receives ``intra_only``
    and ``decoded`` (frames the decoder produced). ``seek=False`` makes the intra-only path demux
    every packet instead of seeking (the fallback; for tests and comparisons).
    """
    import av
    from av.video.reformatter import VideoReformatter

    wanted = {int(i) for i in indices}
    out: dict[int, np.ndarray] = {}
    if not wanted:
        return out
    last = max(wanted)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DeapInputError(path, "no video stream in the file")
            stream = container.streams.video[0]
            context = stream.codec_context
            context.thread_type = "NONE"  # one core per subject-stage; frames come out in order
            context.thread_count = 1
            base = stream.start_time or 0
            time_base = stream.time_base

            def index_of(pts: int | None, counter: int) -> int:
                if pts is None or time_base is None:
                    return counter
                return int(math.floor(float((pts - base) * time_base) * fps + 0.5))

            decoded = 0
            # One reformatter for the whole file keeps swscale's context (~0.2 ms per 720x576
            # frame instead of ~0.8 ms for a fresh one). Same size, so no interpolation happens;
            # the pixels equal OpenCV's (tested).
            to_rgb = VideoReformatter()

            def keep(frame, counter: int) -> int:  # noqa: ANN001 - av.VideoFrame
                nonlocal decoded
                decoded += 1
                i = index_of(frame.pts, counter)
                if i in wanted and i not in out:
                    out[i] = to_rgb.reformat(frame, format="rgb24",
                                             interpolation="FAST_BILINEAR").to_ndarray()
                return i

            if context.codec.intra_only:
                # Seek to each wanted frame (every packet is a keyframe, so seeking is exact and
                # reads only the wanted packets: ~1/8 of a DV file at 25 fps); whatever a seek
                # cannot reach (no index, odd timestamps) comes from one pass over every packet.
                def decode_packet(packet, i: int) -> None:  # noqa: ANN001 - av.Packet
                    if i in wanted and i not in out:
                        for frame in context.decode(packet):
                            keep(frame, i)

                seeked = False
                if seek and time_base is not None and stream.start_time is not None:
                    for i in sorted(wanted):
                        if i in out:
                            continue
                        target = base + int(round(i / fps / float(time_base)))
                        try:
                            container.seek(target, stream=stream, backward=True, any_frame=False)
                        except av.FFmpegError:
                            break
                        seeked = True
                        for packet in container.demux(stream):
                            if packet.pts is None:
                                break
                            j = index_of(packet.pts, -1)
                            decode_packet(packet, j)
                            if j >= i:
                                break
                if len(out) < len(wanted):
                    if seeked:
                        container.seek(base, stream=stream, backward=True, any_frame=False)
                    counter = 0
                    for packet in container.demux(stream):
                        if packet.size == 0 and packet.pts is None:
                            continue  # the demuxer's end-of-stream packet
                        i = index_of(packet.pts, counter)
                        counter += 1
                        decode_packet(packet, i)
                        if i >= last and len(out) == len(wanted):
                            break
                for frame in context.decode(None):
                    keep(frame, last)
            else:
                for counter, frame in enumerate(container.decode(stream)):
                    if keep(frame, counter) >= last:
                        break
            if stats is not None:
                stats.update(intra_only=bool(context.codec.intra_only), decoded=decoded)
    except DeapInputError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as err:
        raise DeapInputError(path, f"cannot be decoded ({type(err).__name__}: {err})") from err
    missing = sorted(wanted - set(out))
    if missing:
        raise DeapInputError(path, f"{len(missing)} of {len(wanted)} wanted frames could not be "
                             f"decoded (first: frame {missing[0]}); truncated or corrupt file?")
    return out
