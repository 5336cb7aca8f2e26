"""The segment stage's settings: window length, stride, windows per trial, baseline correction."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

SEGMENT_CODE_VERSION = "1"
"""Bump when :func:`~pipeline.stages.segment.windows.segment_trials` computes something different for the same parameters."""


class SegmentParams(BaseModel):
    """Settings of the segmentation stage.

    The first :data:`deap_format.BASELINE_SECONDS` of every trial (the pre-trial baseline) are
    always dropped; windows start at playback. ``max_segments`` caps the windows per trial (None:
    as many as fit). ``baseline_correction`` subtracts each channel's mean over that trial's
    baseline before cutting. Invalid values raise pydantic's ``ValidationError``; a window or
    stride that does not fit the data is a :class:`ParameterError` from :func:`segment_trials`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_s: float = Field(3.0, gt=0)
    stride_s: float = Field(3.0, gt=0)
    max_segments: PositiveInt | None = 20
    baseline_correction: bool = False


def libraries(params: SegmentParams) -> tuple[str, ...]:
    return ("numpy",)
