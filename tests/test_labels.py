"""Label schemes at their exact boundaries (paper eq. 5: ≥ 5 is high)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from store_schema.contract.labels import (
    DEAP4_CLASSES,
    Deap3Boundaries,
    LabelScheme,
    class_names,
    deap2,
    deap3,
    deap4,
    make_labels,
)

ratings = st.floats(min_value=1.0, max_value=9.0, allow_nan=False)


@pytest.mark.parametrize(("rating", "expected"), [(4.99, 0), (5.0, 1), (5.01, 1), (1.0, 0), (9.0, 1)])
def test_deap2_is_high_from_exactly_five(rating: float, expected: int) -> None:
    assert deap2(rating) == expected


@pytest.mark.parametrize(
    ("valence", "arousal", "quadrant"),
    [
        (5.0, 5.0, "HAHV"),
        (4.99, 5.0, "HALV"),
        (5.0, 4.99, "LAHV"),
        (4.99, 4.99, "LALV"),
        (5.01, 5.01, "HAHV"),
        # The paper's released code puts v = 5, a > 5 in HALV; eq. 5 says HAHV.
        (5.0, 7.0, "HAHV"),
        (1.0, 9.0, "HALV"),
        (9.0, 1.0, "LAHV"),
    ],
)
def test_deap4_follows_equation_5_at_the_boundary(valence: float, arousal: float, quadrant: str) -> None:
    assert DEAP4_CLASSES[int(deap4(valence, arousal))] == quadrant


@pytest.mark.parametrize(
    ("rating", "expected"),
    [(3.99, 0), (4.0, 1), (4.01, 1), (5.99, 1), (6.0, 1), (6.99, 1), (7.0, 2), (7.01, 2),
     (1.0, 0), (3.0, 0), (9.0, 2)],
)
def test_deap3_default_edges_are_the_papers(rating: float, expected: int) -> None:
    """Paper §4.1: 1-3 low, 4-6 medium, 7-9 high; continuous ratings below 4 low, from 7 high."""
    assert deap3(rating) == expected


def test_deap3_edges_are_configurable() -> None:
    edges = Deap3Boundaries(low_below=3.0, high_from=7.0)
    assert deap3([2.99, 3.0, 6.99, 7.0], edges).tolist() == [0, 1, 1, 2]


@pytest.mark.parametrize(("low", "high"), [(6.0, 4.0), (5.0, 5.0), (1.0, 5.0), (4.0, 9.0)])
def test_deap3_rejects_unordered_or_degenerate_edges(low: float, high: float) -> None:
    with pytest.raises(ValidationError, match="low_below"):
        Deap3Boundaries(low_below=low, high_from=high)


@given(valence=ratings, arousal=ratings)
def test_deap4_agrees_with_the_two_binary_labels(valence: float, arousal: float) -> None:
    name = DEAP4_CLASSES[int(deap4(valence, arousal))]
    assert (name[0] == "H") == bool(deap2(arousal))
    assert (name[2] == "H") == bool(deap2(valence))


@given(st.lists(ratings, min_size=1, max_size=50))
def test_deap3_is_monotone_in_the_rating(values: list[float]) -> None:
    values = sorted(values)
    assert np.all(np.diff(deap3(values)) >= 0)


def test_make_labels_picks_the_dimension_of_the_scheme() -> None:
    valence = np.array([2.0, 8.0, 5.0])
    arousal = np.array([8.0, 2.0, 4.0])
    assert make_labels("deap2-valence", valence=valence, arousal=arousal).tolist() == [0, 1, 1]
    assert make_labels("deap2-arousal", valence=valence, arousal=arousal).tolist() == [1, 0, 0]
    assert make_labels(LabelScheme.deap3_arousal, valence=valence, arousal=arousal).tolist() == [2, 0, 1]
    assert make_labels("deap4", valence=valence, arousal=arousal).tolist() == [1, 2, 2]
    assert class_names("deap3-valence") == ("low", "medium", "high")


def test_labels_refuse_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        deap2([5.0, float("nan")])
