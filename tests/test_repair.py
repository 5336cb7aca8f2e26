"""`milmer store verify --repair` on a store built by the real pipeline: it uncommits exactly the
damaged subject-stages, and the next preprocess run recomputes exactly those, bit for bit."""

from __future__ import annotations

import hashlib
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app
from flows.config import PreprocessConfig
from flows.preprocess import RunSummary, run_chain_inline
from store_schema.engine.store import FeatureStore
from store_schema.engine.verify import verify_store

EEG_STAGES = ["ingest", "eeg", "segment"]


def run(deap: Path, store: Path) -> RunSummary:
    return run_chain_inline(PreprocessConfig(deap=deap, store=str(store), stages=EEG_STAGES))


def statuses(summary: RunSummary) -> dict[tuple[int, str], str]:
    return {(o.subject, o.stage.value): o.status for o in summary.outcomes}


def checksums(url: Path) -> dict[tuple[int, str], tuple[str, dict[str, str]]]:
    """Every committed subject-stage: its fingerprint and a sha256 of each array's bytes."""
    store = FeatureStore.open(str(url), mode="r")
    return {
        (s, stage): (store.record(s, stage).fingerprint,
                     {name: hashlib.sha256(data.tobytes()).hexdigest() + f" {data.shape} {data.dtype}"
                      for name, data in store.read_stage(s, stage).items()})
        for s in store.subjects() for stage in EEG_STAGES if store.record(s, stage) is not None
    }


def verify(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, ["store", "verify", *args], catch_exceptions=False)


def test_verify_repair_then_preprocess_recomputes_exactly_the_damaged_subject_stages(
    small_deap: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store.zarr"
    first = run(small_deap, store)
    assert set(statuses(first).values()) == {"computed"} and len(first.outcomes) == 6
    original = checksums(store)
    assert len(original) == 6

    # two kinds of damage in two subject-stages: a deleted chunk, a truncated chunk
    (store / "subjects/s01/segment/eeg/c/0/0/0").unlink()
    chunk = store / "subjects/s02/eeg/eeg/c/1/0/0"
    chunk.write_bytes(chunk.read_bytes()[: len(chunk.read_bytes()) // 2])

    repaired = verify("--repair", str(store))
    assert repaired.exit_code == 1, repaired.output
    lines = repaired.output.splitlines()
    assert "subjects/s01/segment/eeg: 1 of 1 chunk(s) missing" in lines
    assert any(line.startswith("subjects/s02/eeg/eeg: chunk at index 1 unreadable") for line in lines)
    assert [line for line in lines if line.startswith("repaired ")] == [
        "repaired subjects/s01/segment: commit marker dropped (1 problem); the next `milmer "
        "preprocess` recomputes it",
        "repaired subjects/s02/eeg: commit marker dropped (1 problem); the next `milmer "
        "preprocess` recomputes it",
    ]
    assert "2 subject-stage(s) uncommitted; the next `milmer preprocess` (same --stages and " \
           "settings) recomputes them" in lines

    opened = FeatureStore.open(str(store), mode="r")
    states = {(s, stage): opened.state(s, stage) for s in (1, 2) for stage in EEG_STAGES}
    assert states == {**{key: "committed" for key in states},
                      (1, "segment"): "uncommitted", (2, "eeg"): "uncommitted"}
    # the store is consistent again (nothing broken is visible); s02/segment waits for its upstream
    again = verify(str(store))
    assert again.exit_code == 0, again.output
    assert "note subjects/s02/segment: upstream stage 'eeg' is not committed" in again.output
    assert "ok: 4 committed subject-stages verified" in again.output

    rerun = run(small_deap, store)
    assert statuses(rerun) == {**{key: "skipped" for key in states},
                               (1, "segment"): "computed", (2, "eeg"): "computed"}
    assert verify_store(FeatureStore.open(str(store), mode="r")) == []
    clean = verify("--repair", str(store))
    assert clean.exit_code == 0 and "ok: 6 committed subject-stages verified" in clean.output
    assert "repaired" not in clean.output and "note" not in clean.output
    assert checksums(store) == original  # same fingerprints, same bytes


def test_verify_repair_on_a_missing_store_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["store", "verify", "--repair", str(tmp_path / "absent.zarr")])
    assert result.exit_code == 2
    assert not (tmp_path / "absent.zarr").exists()
