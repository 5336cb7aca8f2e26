"""What names the face stage without running it: its settings, code version and libraries, and
the lines its warnings become in a run summary.

Kept apart from :mod:`pipeline.stages.faces.detect` so that the stage table, the plan and an up-to-date
``milmer preprocess`` do not import OpenCV and MediaPipe just to compare fingerprints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.readers.video import VideoStart
from store_schema.contract.layout import CROP_SIZE, FRAMES_PER_SEGMENT

FACES_CODE_VERSION = "2"
"""Bump when the face stage computes something different for the same parameters and inputs.
2: records ``frame_index`` (which video frame each crop shows)."""

LIBRARIES = ("mediapipe", "opencv-contrib-python", "av", "numpy")
"""Library versions recorded with the stage (not hashed)."""

Extra = dict[str, Any]


def libraries(params: FacesParams) -> tuple[str, ...]:
    return LIBRARIES


class FacesParams(BaseModel):
    """Settings of the face stage. The fingerprint hashes these, except ``model_path``: the model
    enters the fingerprint by its sha256, wherever the file lies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    frames_per_segment: int = Field(FRAMES_PER_SEGMENT, ge=1,
                                    description="frames sampled per segment")
    min_confidence: float = Field(0.7, gt=0.0, le=1.0, description="BlazeFace minimum score")
    box_margin: float = Field(0.10, ge=0.0, le=1.0,
                              description="box growth on each side, as a fraction of its size")
    crop_size: int = Field(CROP_SIZE, ge=8, description="side of the square, center-padded crop")
    video_start: Literal["auto", "baseline", "playback"] = Field(
        "auto", description="video starts at the 3 s baseline or at playback; auto: from duration")
    model_path: Path | None = Field(
        None, description=("face_detection_short_range.tflite; default $MILMER_FACE_MODEL, then "
                           "~/.cache/milmer/ (provisioned by `make setup`)"))

    @property
    def override(self) -> VideoStart | None:
        return None if self.video_start == "auto" else self.video_start


def problem_lines(extra: Extra) -> list[str]:
    """Unusable videos, then videos used with a caveat (no face found, frames repeated), for a
    run summary: one line per reason (files named, paths when few)."""
    return (_grouped(extra.get("video_problems", []), "its segments have no faces",
                     "their segments have no faces")
            + _grouped(extra.get("video_warnings", []), "", ""))


def _grouped(entries: list[dict[str, str]], one: str, many: str) -> list[str]:
    by_reason: dict[str, list[dict[str, str]]] = {}
    for p in entries:
        by_reason.setdefault(p["reason"], []).append(p)
    lines = []
    for reason, group in by_reason.items():
        if len(group) <= 3:
            lines += [f"{p['path'] or p['file']}: {reason}" + (f"; {one}" if one else "")
                      for p in group]
        else:
            names = ", ".join(p["file"] for p in group[:3])
            lines.append(f"{len(group)} videos ({names}, ...): {reason}" + (f"; {many}" if many else ""))
    return lines
