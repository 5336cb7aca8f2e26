"""Shared fixtures: small synthetic DEAP datasets written by the project's own generator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.synth import SynthParams, write_synthetic_deap

SMALL = SynthParams(subjects=2, trials=4, seconds=4, seed=0, fps=10.0)
"""The smallest dataset that still has two subjects, several trials and real videos."""


@pytest.fixture(scope="session")
def small_deap_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deap-master") / "DEAP"
    write_synthetic_deap(out=out, params=SMALL)
    return out


@pytest.fixture()
def small_deap(small_deap_master: Path, tmp_path: Path) -> Path:
    """A private copy of the small dataset, free to corrupt."""
    copy = tmp_path / "DEAP"
    shutil.copytree(small_deap_master, copy)
    return copy
