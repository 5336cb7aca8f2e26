"""One exception type per domain. Every message names the file, what is wrong, and what to do."""

from __future__ import annotations

from pathlib import Path

from store_schema.errors import MilmerError


class DeapInputError(MilmerError):
    """A DEAP file (real or synthetic) that cannot be used as it is.

    ``str(err)`` is one line: ``<file>: <problem>``, suitable for a summary table.
    """

    def __init__(self, path: Path | str, problem: str, *, subject: int | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        self.subject = subject
        super().__init__(f"{self.path}: {problem}")


class ParameterError(MilmerError):
    """A parameter that is out of range or inconsistent with the data."""


class FaceModelError(MilmerError):
    """The face detection model file is missing, unreadable or not the expected one."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class TokensError(MilmerError):
    """Crops or settings the token stage cannot use; the message says what to do."""


class WeightsError(TokensError):
    """Weights that are missing, unreadable or not Swin-tiny. The message names the path."""


class FinetuneInputError(MilmerError):
    """A face-expression dataset (image folder, FER2013 CSV, RAF-DB) or fine-tuning setting that
    cannot be used. ``str(err)`` is one line: ``<file or folder>: <problem>``."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
