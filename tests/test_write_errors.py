"""Disk full, read-only and permission errors while writing the store.

The real cases mount a tiny tmpfs (the kernel's own ENOSPC and EROFS); they need the right to
mount, which root on the project's machines and CI has (without it they fail, naming why). The injected cases raise the same OSErrors
through :mod:`store_schema.engine.failpoints` at chosen points of a write and run everywhere.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from flows.config import PreprocessConfig
from flows.preprocess import RunSummary, run_chain_inline
from store_schema.engine.store import FeatureStore
from store_schema.engine.verify import verify_store

EEG_STAGES = ["ingest", "eeg", "segment"]


def run(deap: Path, store: Path, **overrides) -> RunSummary:
    overrides.setdefault("stages", EEG_STAGES)
    return run_chain_inline(PreprocessConfig(deap=deap, store=str(store), **overrides))


def outcomes(summary: RunSummary) -> dict[tuple[int, str], tuple[str, str]]:
    return {(o.subject, o.stage.value): (o.status, o.error or "") for o in summary.outcomes}


def checksums(store: Path) -> dict[tuple[int, str], tuple]:
    opened = FeatureStore.open(str(store), mode="r")
    found = {}
    for subject in opened.subjects():
        for stage in EEG_STAGES:
            record = opened.record(subject, stage)
            if record is not None:
                found[(subject, stage)] = (record.fingerprint, {
                    name: hashlib.sha256(opened.read(subject, stage, name).tobytes()).hexdigest()
                    for name in record.arrays})
    return found


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs mounted for this test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    # The project's machines and CI run as root; elsewhere this fails loudly rather than skip.
    assert done.returncode == 0, (
        f"cannot mount a tmpfs at {mount} ({done.stderr.strip()}): these tests need root (or "
        "CAP_SYS_ADMIN) to make a real full and read-only file system")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill the file system up to ``leave`` free bytes with one file."""
    filler = disk / "filler"
    block = np.random.default_rng(0).bytes(1 << 16)
    with filler.open("wb") as out:
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError:
            pass
    with filler.open("r+b") as out:
        out.truncate(max(0, filler.stat().st_size - leave))
    return filler


def test_disk_full_fails_that_subject_stage_only_and_a_rerun_after_freeing_space_finishes(
    small_deap: Path, tiny_disk: Path
) -> None:
    store = tiny_disk / "store.zarr"
    first = run(small_deap, store, subjects=[1])
    assert {status for status, _ in outcomes(first).values()} == {"computed"}
    committed = checksums(store)

    filler = fill(tiny_disk, leave=256 * 1024)  # less than one subject's ingest arrays
    free_before = shutil.disk_usage(tiny_disk).free
    full = outcomes(run(small_deap, store))
    assert all(full[(1, stage)][0] == "skipped" for stage in EEG_STAGES)
    status, error = full[(2, "ingest")]
    assert status == "failed"
    assert "cannot write subjects/s02/ingest: disk full" in error and str(store) in error
    assert "committed subject-stages are intact" in error
    assert full[(2, "eeg")][0] == "failed" and "'ingest' failed" in full[(2, "eeg")][1]

    opened = FeatureStore.open(str(store), mode="r")
    assert opened.state(2, "ingest") == "absent"  # the partial group was removed ...
    assert shutil.disk_usage(tiny_disk).free >= free_before - 64 * 1024  # ... and its space freed
    assert checksums(store) == committed
    assert verify_store(opened) == []

    filler.unlink()
    again = outcomes(run(small_deap, store))
    assert {k for k, (status, _) in again.items() if status == "computed"} == {
        (2, stage) for stage in EEG_STAGES}
    assert verify_store(FeatureStore.open(str(store), mode="r")) == []


def test_a_read_only_store_refuses_recomputes_and_keeps_the_committed_data(
    small_deap: Path, tiny_disk: Path
) -> None:
    store = tiny_disk / "store.zarr"
    run(small_deap, store, subjects=[1])
    committed = checksums(store)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)

    # A new band-pass edge makes s01's eeg and segment stages stale: the recompute is refused.
    refused = outcomes(run(small_deap, store, subjects=[1], eeg={"l_freq": 4.5}))
    status, error = refused[(1, "eeg")]
    assert status == "failed"
    assert "read-only file system" in error.lower() and str(store) in error, error
    assert checksums(store) == committed  # the old commit was not even dropped
    assert verify_store(FeatureStore.open(str(store), mode="r")) == []


@pytest.mark.parametrize(("failpoint", "shown"), [
    ("subjects/s02/eeg:mid-array=enospc", "cannot write subjects/s02/eeg: disk full"),
    ("subjects/s02/segment:after-arrays=enospc", "cannot write subjects/s02/segment: disk full"),
    ("subjects/s01/ingest:write-error=eacces", "cannot write subjects/s01/ingest: permission denied"),
    ("subjects/s02/ingest:write-error=erofs", "cannot write subjects/s02/ingest: read-only file system"),
])
def test_injected_write_errors_fail_one_subject_stage_and_damage_nothing(
    small_deap: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failpoint: str, shown: str
) -> None:
    store = tmp_path / "store.zarr"
    run(small_deap, store, subjects=[1], stages=["ingest"])
    committed = checksums(store)
    where = failpoint.split(":")[0]
    subject, stage = int(where.split("/")[1][1:]), where.split("/")[2]

    monkeypatch.setenv("MILMER_FAILPOINT", failpoint)
    result = outcomes(run(small_deap, store, force=(subject, stage) == (1, "ingest")))
    status, error = result[(subject, stage)]
    assert status == "failed" and shown in error, error
    opened = FeatureStore.open(str(store), mode="r")
    after = checksums(store)
    if (subject, stage) in committed:  # refused at its first write: the old commit still stands
        assert after[(subject, stage)] == committed[(subject, stage)]
    else:
        assert opened.state(subject, stage) != "committed"
    other = 2 if subject == 1 else 1
    assert all(result[(other, s)][0] in ("computed", "skipped") for s in EEG_STAGES)
    # what was committed before and is not the failed subject-stage is untouched
    assert all(after[key] == value for key, value in committed.items() if key != (subject, stage))
    assert verify_store(opened) == []

    monkeypatch.delenv("MILMER_FAILPOINT")
    run(small_deap, store)
    assert verify_store(FeatureStore.open(str(store), mode="r")) == []
    assert set(checksums(store)) == {(s, st) for s in (1, 2) for st in EEG_STAGES}
