"""Read a DEAP folder, real or synthetic, the same way.

What it does, in the order a user meets it:

* :func:`find_layout` finds the sub-folders (``data_preprocessed_python``,
  ``data_preprocessed_matlab``, ``metadata_csv``, ``face_video``, ``data_original``) whether the
  user points at the DEAP root, at its parent, or at one of the sub-folders.
* :func:`preprocessed_file` says which file holds a subject's arrays: its ``sNN.dat``, or, when
  there is none (or when asked), its MATLAB copy ``sNN.mat``; :mod:`pipeline.readers.preprocessed` reads
  and validates either with the same checks.
* :func:`pipeline.readers.ratings.load_ratings` reads ``participant_ratings.csv`` and validates it per
  participant.
* :func:`scan_deap` puts it together: every subject, every trial paired with its video through
  ``Trial`` (presentation order) → ``Experiment_id`` (the ``.dat`` index), and every problem found.
  One bad subject never stops the others from being read.

Videos are probed, aligned and paired by :mod:`pipeline.readers.video` (shared with the face stage).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, computed_field

from pipeline.readers import deap_format as fmt
from pipeline.errors import DeapInputError
from pipeline.readers.preprocessed import DatContents, flat_eeg_problem, load_preprocessed
from pipeline.readers.preprocessed import load_dat  # noqa: F401 - re-exported
from pipeline.readers.ratings import RatingsTable, TrialRating, load_ratings
from pipeline.readers.video import VideoInfo, VideoStart, find_trial_videos

_CANONICAL_DIRS = {fmt.PREPROCESSED_DIR, fmt.PREPROCESSED_MATLAB_DIR, fmt.METADATA_DIR,
                   fmt.VIDEO_DIR, fmt.ORIGINAL_DIR}
_SUBJECT_FILE = re.compile(r"^s(\d{2})\.dat$")
_MAT_FILE = re.compile(r"^s(\d{2})\.mat$")
_BDF_FILE = re.compile(r"^s(\d{2})\.bdf$")


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


class DeapLayout(BaseModel):
    """Where the parts of a DEAP folder are. Any part may be absent (``None``)."""

    model_config = ConfigDict(frozen=True)

    root: Path
    preprocessed_dir: Path | None
    ratings_csv: Path | None
    video_dir: Path | None
    original_dir: Path | None
    matlab_dir: Path | None = None
    """``data_preprocessed_matlab``: the ``sNN.mat`` copies of the ``.dat`` files."""


PreprocessedFormat = Literal["auto", "dat", "mat"]
"""Which preprocessed file to read: ``auto`` = the ``.dat``, the ``.mat`` where no ``.dat`` is."""


def _files_in(folder: Path, pattern: re.Pattern[str]) -> bool:
    return any(pattern.match(p.name) for p in folder.iterdir() if p.is_file())


def find_layout(path: Path | str) -> DeapLayout:
    """Find DEAP's sub-folders from the root, its parent folder, or one of its sub-folders."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DeapInputError(path, "no such file or directory; give the DEAP folder")
    if path.is_file():
        if path.name == fmt.RATINGS_FILE:
            path = path.parent.parent
        elif _SUBJECT_FILE.match(path.name) or _MAT_FILE.match(path.name):
            path = path.parent
        else:
            raise DeapInputError(path, "is a file; give the DEAP folder (the one holding "
                                 f"{fmt.PREPROCESSED_DIR}/ and {fmt.METADATA_DIR}/)")
    path = path.resolve()
    # The user may point at the root, at a folder holding the root, or at one sub-folder.
    candidates = [path, path.parent, *sorted(p for p in path.iterdir() if p.is_dir())]

    def find_dir(name: str, accept_self: bool) -> Path | None:
        if accept_self and path.name == name:
            return path
        for base in candidates:
            if (base / name).is_dir():
                return base / name
        return None

    preprocessed = find_dir(fmt.PREPROCESSED_DIR, accept_self=True)
    if preprocessed is None and _files_in(path, _SUBJECT_FILE):
        preprocessed = path  # a folder of sNN.dat files under another name
    matlab = find_dir(fmt.PREPROCESSED_MATLAB_DIR, accept_self=True)
    if matlab is None and preprocessed is None and _files_in(path, _MAT_FILE):
        matlab = path  # a folder of sNN.mat files under another name
    metadata = find_dir(fmt.METADATA_DIR, accept_self=True)
    ratings: Path | None = None
    for folder in ([metadata] if metadata else []) + [path, path.parent]:
        if (folder / fmt.RATINGS_FILE).is_file():
            ratings = folder / fmt.RATINGS_FILE
            break
    video = find_dir(fmt.VIDEO_DIR, accept_self=True)
    original = find_dir(fmt.ORIGINAL_DIR, accept_self=True)
    # The root is the folder holding the canonical sub-folders (the user may have pointed below it).
    canonical = [p for p in (preprocessed, matlab, metadata, video, original)
                 if p is not None and p.name in _CANONICAL_DIRS]
    root = canonical[0].parent if canonical else path
    return DeapLayout(
        root=root,
        preprocessed_dir=preprocessed,
        ratings_csv=ratings,
        video_dir=video,
        original_dir=original,
        matlab_dir=matlab,
    )


def subjects_in(layout: DeapLayout, *, source: Literal["preprocessed", "original"] = "preprocessed",
                ) -> list[int]:
    """Subject numbers that have a ``sNN.dat`` or ``sNN.mat`` file (``sNN.bdf`` for source
    ``original``)."""
    if source == "original":
        folders = [(layout.original_dir, _BDF_FILE)]
    else:
        folders = [(layout.preprocessed_dir, _SUBJECT_FILE), (layout.matlab_dir, _MAT_FILE)]
    found = {int(m.group(1)) for folder, pattern in folders if folder is not None
             for m in (pattern.match(p.name) for p in folder.iterdir()) if m}
    return sorted(found)


def preprocessed_file(layout: DeapLayout, subject: int, *,
                      preprocessed_format: PreprocessedFormat = "auto") -> Path | None:
    """The file holding ``subject``'s preprocessed arrays: ``sNN.dat``, else ``sNN.mat`` (``auto``),
    or only the one asked for; ``None`` when it is not there."""
    dat = layout.preprocessed_dir / fmt.dat_name(subject) if layout.preprocessed_dir else None
    mat = layout.matlab_dir / fmt.mat_name(subject) if layout.matlab_dir else None
    order = {"auto": [dat, mat], "dat": [dat], "mat": [mat]}[preprocessed_format]
    return next((p for p in order if p is not None and p.is_file()), None)


# --------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------


class Problem(BaseModel):
    """One thing wrong in a DEAP folder. ``error`` makes the subject unusable; ``warning`` not."""

    model_config = ConfigDict(frozen=True)

    severity: Literal["error", "warning"]
    subject: int | None
    path: Path | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        who = f"[{fmt.subject_tag(self.subject)}] " if self.subject is not None else ""
        return f"{self.severity}: {who}{where}{self.message}"


class TrialInfo(BaseModel):
    """One trial of one subject: its ``.dat`` index, its ratings and its video."""

    model_config = ConfigDict(frozen=True)

    experiment_id: int  # 1-based; .dat trial index = experiment_id - 1
    trial: int  # presentation order, 1-based; names the video file
    start_time_us: int | None
    video_file: str  # expected file name, e.g. s01_trial03.avi
    video: VideoInfo | None  # None when missing or unusable (see the subject's problems)
    video_start: VideoStart | None


class SubjectInfo(BaseModel):
    """Everything known about one subject without holding its arrays."""

    subject: int
    preprocessed_path: Path | None
    """The ``sNN.dat`` read, or the ``sNN.mat`` where there was no ``.dat`` (or it was asked for)."""
    n_trials: int | None = None
    n_channels: int | None = None
    n_samples: int | None = None
    sfreq: int = fmt.SFREQ
    trials: list[TrialInfo] = []  # Experiment_id order
    problems: list[Problem] = []

    @property
    def usable(self) -> bool:
        return self.preprocessed_path is not None and not any(
            p.severity == "error" for p in self.problems)

    @computed_field  # type: ignore[prop-decorator] - pydantic's documented idiom
    @property
    def preprocessed_format(self) -> Literal["dat", "mat"] | None:
        """Which of DEAP's preprocessed formats was read (``None``: neither was found)."""
        path = self.preprocessed_path
        return None if path is None else ("mat" if path.suffix.lower() == ".mat" else "dat")

    @property
    def videos_found(self) -> int:
        return sum(t.video is not None for t in self.trials)

    @property
    def missing_videos(self) -> list[str]:
        return [t.video_file for t in sorted(self.trials, key=lambda t: t.trial) if t.video is None]


class DeapScan(BaseModel):
    """The result of :func:`scan_deap`: what the folder holds and every problem in it."""

    layout: DeapLayout
    subjects: list[SubjectInfo]
    problems: list[Problem]  # problems that concern the whole folder

    @property
    def usable_subjects(self) -> list[int]:
        return [s.subject for s in self.subjects if s.usable]

    @property
    def usable(self) -> bool:
        return bool(self.usable_subjects) and not any(p.severity == "error" for p in self.problems)

    def all_problems(self) -> list[Problem]:
        return [*self.problems, *(p for s in self.subjects for p in s.problems)]


@dataclass(frozen=True)
class SubjectRecording:
    """A subject's arrays and trial pairing, ready for the EEG stages."""

    info: SubjectInfo
    dat: DatContents


def scan_deap(
    root: Path | str,
    *,
    subjects: Iterable[int] | None = None,
    check_videos: bool = True,
    video_start: VideoStart | None = None,
    preprocessed_format: PreprocessedFormat = "auto",
) -> DeapScan:
    """Read and validate a DEAP folder. Never raises for a bad subject: see ``problems``.

    Raises :class:`DeapInputError` only when ``root`` itself does not exist.
    """
    layout = find_layout(root)
    problems: list[Problem] = []
    if layout.preprocessed_dir is None and layout.matlab_dir is None:
        problems.append(Problem(severity="error", subject=None, path=layout.root, message=(
            f"no {fmt.PREPROCESSED_DIR}/ folder with sNN.dat files (nor "
            f"{fmt.PREPROCESSED_MATLAB_DIR}/ with sNN.mat) found here, in its parent or in its "
            "sub-folders")))
    ratings: RatingsTable | None = None
    if layout.ratings_csv is None:
        problems.append(Problem(severity="error", subject=None, path=layout.root, message=(
            f"no {fmt.METADATA_DIR}/{fmt.RATINGS_FILE} found: it pairs trials with videos")))
    else:
        try:
            ratings = load_ratings(layout.ratings_csv)
        except DeapInputError as err:
            problems.append(Problem(severity="error", subject=None, path=err.path, message=err.problem))
    wanted = sorted(set(subjects)) if subjects is not None else subjects_in(layout)
    if subjects is None and ratings is not None:
        without_dat = sorted((set(ratings.by_subject) | set(ratings.subject_errors)) - set(wanted))
        if without_dat:
            problems.append(Problem(severity="warning", subject=None, path=layout.preprocessed_dir,
                                    message=f"participant(s) {', '.join(map(str, without_dat))} "
                                    "have ratings but no .dat file"
                                    + (" (nor .mat)" if layout.matlab_dir else "")))
    if layout.video_dir is None and check_videos and any(
            s <= fmt.LAST_SUBJECT_WITH_VIDEO for s in wanted):
        problems.append(Problem(severity="warning", subject=None, path=layout.root, message=(
            f"no {fmt.VIDEO_DIR}/ folder found: the face stages will have no input")))
    infos = [
        _read_subject(layout, s, ratings, check_videos=check_videos, video_start=video_start,
                      preprocessed_format=preprocessed_format)[0]
        for s in wanted
    ]
    return DeapScan(layout=layout, subjects=infos, problems=problems)


def load_subject(
    root: Path | str | DeapLayout,
    subject: int,
    *,
    check_videos: bool = True,
    video_start: VideoStart | None = None,
    preprocessed_format: PreprocessedFormat = "auto",
) -> SubjectRecording:
    """Load one subject's arrays and trial pairing; raise :class:`DeapInputError` if unusable."""
    layout = root if isinstance(root, DeapLayout) else find_layout(root)
    if layout.ratings_csv is None:
        raise DeapInputError(layout.root, f"no {fmt.METADATA_DIR}/{fmt.RATINGS_FILE} found")
    ratings = load_ratings(layout.ratings_csv)
    info, dat = _read_subject(layout, subject, ratings, check_videos=check_videos,
                              video_start=video_start, preprocessed_format=preprocessed_format)
    errors = [p for p in info.problems if p.severity == "error"]
    if errors or dat is None:
        first = errors[0]
        raise DeapInputError(first.path or layout.root, first.message, subject=subject)
    return SubjectRecording(info=info, dat=dat)


def _read_subject(
    layout: DeapLayout,
    subject: int,
    ratings: RatingsTable | None,
    *,
    check_videos: bool,
    video_start: VideoStart | None,
    preprocessed_format: PreprocessedFormat,
) -> tuple[SubjectInfo, DatContents | None]:
    problems: list[Problem] = []

    def error(path: Path | None, message: str) -> None:
        problems.append(Problem(severity="error", subject=subject, path=path, message=message))

    def warning(path: Path | None, message: str) -> None:
        problems.append(Problem(severity="warning", subject=subject, path=path, message=message))

    path = preprocessed_file(layout, subject, preprocessed_format=preprocessed_format)
    dat: DatContents | None = None
    if path is None:
        if preprocessed_format == "mat":
            folder, names = layout.matlab_dir, [fmt.mat_name(subject)]
        else:
            folder, names = layout.preprocessed_dir, [fmt.dat_name(subject)]
            if preprocessed_format == "auto" and layout.matlab_dir is not None:
                names.append(fmt.mat_name(subject))
        error(folder / names[0] if folder else None, f"no {' nor '.join(names)} (unknown subject?)")
    else:
        try:
            dat = load_preprocessed(path)
        except DeapInputError as err:
            error(err.path, err.problem)
        else:
            if (flat := flat_eeg_problem(dat.data)) is not None:
                error(path, flat)
    info = SubjectInfo(subject=subject, preprocessed_path=path)
    if dat is not None:
        info.n_trials, info.n_channels, info.n_samples = (int(n) for n in dat.data.shape)

    rows: list[TrialRating] | None = None
    if ratings is not None:
        if subject in ratings.subject_errors:
            error(ratings.path, f"participant {subject}: {ratings.subject_errors[subject]}")
        elif subject not in ratings.by_subject:
            error(ratings.path, f"participant {subject} has no rows")
        else:
            rows = ratings.by_subject[subject]
    if dat is not None and rows is not None and len(rows) != dat.n_trials:
        error(ratings.path if ratings else None,
              f"participant {subject} has {len(rows)} rated trials but {dat.path.name} "
              f"holds {dat.n_trials}")
        rows = None
    if dat is not None and rows is not None:
        _compare_labels(dat, rows, warning)

    if rows is not None:
        info.trials = _pair_videos(layout, subject, rows, dat, problems, check_videos=check_videos,
                                   video_start=video_start)
    info.problems = problems
    return info, dat if info.usable else None


def _compare_labels(dat: DatContents, rows: list[TrialRating], warning) -> None:  # noqa: ANN001
    """The ``.dat`` (or ``.mat``) labels are used for training; say so when the CSV disagrees."""
    by_experiment = {r.experiment_id: r for r in rows}
    for index in range(dat.n_trials):
        row = by_experiment[index + 1]
        csv_values = np.array([row.valence, row.arousal, row.dominance, row.liking])
        if not np.allclose(dat.labels[index], csv_values, atol=0.006):
            warning(dat.path, f"labels of Experiment_id {index + 1} {dat.labels[index].round(2).tolist()} "
                    f"differ from the ratings CSV {csv_values.tolist()}; the {dat.path.suffix} "
                    "labels are used")
            return


def _pair_videos(
    layout: DeapLayout,
    subject: int,
    rows: list[TrialRating],
    dat: DatContents | None,
    problems: list[Problem],
    *,
    check_videos: bool,
    video_start: VideoStart | None,
) -> list[TrialInfo]:
    rows = sorted(rows, key=lambda r: r.experiment_id)
    videos = find_trial_videos(
        video_dir=layout.video_dir, subject=subject,
        trials=[(r.experiment_id - 1, r.trial) for r in rows] if check_videos else [],
        trial_seconds=dat.trial_seconds if dat is not None else None, video_start=video_start)
    by_trial = {v.trial_index: v for v in videos}
    filmed = subject <= fmt.LAST_SUBJECT_WITH_VIDEO
    trials: list[TrialInfo] = []
    missing: list[str] = []
    for row in rows:
        found = by_trial.get(row.experiment_id - 1)
        if found is not None and found.exists and found.problem is not None:
            problems.append(Problem(severity="warning", subject=subject, path=found.path,
                                    message=f"{found.problem}; trial skipped for faces"))
        elif found is not None and not found.exists and filmed and layout.video_dir is not None:
            missing.append(found.file)
        elif found is not None and found.warning is not None:
            problems.append(Problem(severity="warning", subject=subject, path=found.path,
                                    message=found.warning))
        usable = found is not None and found.problem is None
        trials.append(TrialInfo(
            experiment_id=row.experiment_id, trial=row.trial, start_time_us=row.start_time_us,
            video_file=fmt.video_name(subject, row.trial), video=found.video if usable else None,
            video_start=found.video_start if usable else None))
    if missing:
        shown = ", ".join(sorted(missing))
        folder = layout.video_dir / fmt.subject_tag(subject) if layout.video_dir else None
        problems.append(Problem(severity="warning", subject=subject, path=folder, message=(
            f"{len(missing)} of {len(rows)} videos missing: {shown}")))
    return trials
