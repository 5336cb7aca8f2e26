"""pipeline.readers.video: a video whose duration makes its alignment a guess is said to be so."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.readers.video import VIDEO_DURATION_TOLERANCE_S, VideoInfo, duration_warning, video_alignment


def info(seconds: float, fps: float = 50.0) -> VideoInfo:
    return VideoInfo(path=Path("s01_trial01.avi"), fps=fps, frame_count=round(seconds * fps),
                     width=720, height=576)


@pytest.mark.parametrize("seconds", [63.0, 62.6, 63.4, 60.0, 59.6, 60.4])
def test_deap_durations_are_not_warned(seconds: float) -> None:
    video = info(seconds)
    start = video_alignment(video, trial_seconds=60)
    assert duration_warning(video, trial_seconds=60, start=start) is None


@pytest.mark.parametrize(("seconds", "start"), [(61.5, "playback"), (70.0, "baseline"),
                                                (64.0, "baseline")])
def test_other_durations_are_warned_with_the_file_duration_and_chosen_start(
    seconds: float, start: str
) -> None:
    video = info(seconds)
    assert video_alignment(video, trial_seconds=60) == start
    warning = duration_warning(video, trial_seconds=60, start=start)
    assert warning is not None
    assert f"{seconds:.2f} s long" in warning and f"taken to start at the {start}" in warning
    assert "neither about 63 s" in warning and "nor about 60 s" in warning


def test_the_tolerance_is_the_one_the_alignment_allows() -> None:
    edge = 60 + VIDEO_DURATION_TOLERANCE_S
    assert duration_warning(info(edge, fps=100.0), trial_seconds=60, start="playback") is None
    assert duration_warning(info(edge + 0.02, fps=100.0), trial_seconds=60, start="playback")
