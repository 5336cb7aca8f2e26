"""DEAP's ``metadata_csv/participant_ratings.csv``: read and validated per participant."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from pipeline.readers import deap_format as fmt
from pipeline.errors import DeapInputError



class TrialRating(BaseModel):
    """One row of ``participant_ratings.csv``."""

    model_config = ConfigDict(frozen=True)

    trial: int  # presentation order, 1-based
    experiment_id: int  # video id, 1-based = .dat index + 1
    start_time_us: int
    valence: float
    arousal: float
    dominance: float
    liking: float
    familiarity: int | None  # blank for some participants


class RatingsTable(BaseModel):
    """The validated ratings of every participant, and the problems of those that failed."""

    path: Path
    by_subject: dict[int, list[TrialRating]]  # rows sorted by trial
    subject_errors: dict[int, str]  # participant -> why its rows are unusable


def load_ratings(path: Path | str) -> RatingsTable:
    """Read ``participant_ratings.csv``.

    A problem with the whole file (missing, no header, a missing column) raises
    :class:`DeapInputError`; a problem with one participant's rows is recorded in
    ``subject_errors`` so the others stay usable.
    """
    path = Path(path)
    if not path.is_file():
        raise DeapInputError(path, "file not found")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if not text.strip():
        raise DeapInputError(path, "empty file")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in fmt.RATINGS_COLUMNS if c not in header]
    if missing:
        first_line = text.lstrip().splitlines()[0]
        found = first_line if len(first_line) <= 100 else first_line[:100] + "..."
        raise DeapInputError(
            path, f"missing column(s) {', '.join(missing)}; expected header {fmt.RATINGS_HEADER_LINE} "
            f"(comma-separated), found {found}")
    rows: dict[int, list[TrialRating]] = {}
    errors: dict[int, str] = {}
    for line_no, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        try:
            subject = int(row["Participant_id"])
        except ValueError:
            raise DeapInputError(
                path, f"line {line_no}: Participant_id {row['Participant_id']!r} is not an integer"
            ) from None
        if subject in errors:
            continue
        try:
            rows.setdefault(subject, []).append(_parse_rating_row(row))
        except ValueError as err:
            errors[subject] = f"line {line_no}: {err}"
    for subject, subject_rows in rows.items():
        if subject not in errors:
            problem = _check_trial_permutation(subject_rows)
            if problem:
                errors[subject] = problem
        rows[subject] = sorted(subject_rows, key=lambda r: r.trial)
    return RatingsTable(
        path=path,
        by_subject={s: r for s, r in rows.items() if s not in errors},
        subject_errors=errors,
    )


def _parse_rating_row(row: dict[str, str]) -> TrialRating:
    def number(column: str, kind: type) -> float | int:
        text = row[column]
        try:
            parsed = float(text)
        except ValueError:
            raise ValueError(f"{column} {text!r} is not a number") from None
        if kind is int and not parsed.is_integer():
            raise ValueError(f"{column} {text!r} is not a whole number")
        value = int(parsed) if kind is int else parsed
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{column} {text!r} is not a finite number")
        return value

    ratings = {c: number(c, float) for c in ("Valence", "Arousal", "Dominance", "Liking")}
    for column, value in ratings.items():
        if not fmt.RATING_MIN <= value <= fmt.RATING_MAX:
            raise ValueError(f"{column} {value:g} is outside [1, 9]")
    return TrialRating(
        trial=int(number("Trial", int)),
        experiment_id=int(number("Experiment_id", int)),
        start_time_us=int(number("Start_time", int)),
        valence=ratings["Valence"],
        arousal=ratings["Arousal"],
        dominance=ratings["Dominance"],
        liking=ratings["Liking"],
        familiarity=int(number("Familiarity", int)) if row["Familiarity"] else None,
    )


def _check_trial_permutation(rows: list[TrialRating]) -> str | None:
    n = len(rows)
    expected = set(range(1, n + 1))
    for column in ("trial", "experiment_id"):
        values = [getattr(r, column) for r in rows]
        label = "Trial" if column == "trial" else "Experiment_id"
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            return f"duplicate {label} {', '.join(map(str, duplicates))}"
        if set(values) != expected:
            odd = sorted(set(values) - expected)
            return f"{label} values {odd} are not a permutation of 1..{n}"
    return None
