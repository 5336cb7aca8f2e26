"""Durable commits: on a local store no commit record reaches the disk before the chunks it names.

The os layer is patched to record every fsync (by the path of its descriptor) and every rename
while real subject-stages are written; the order is then checked per subject-stage.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.config import PreprocessConfig
from flows.preprocess import run_chain_inline
from store_schema.engine.durable import ENV
from store_schema.contract.layout import stage_path
from store_schema.engine.store import COMMIT_ATTR, FeatureStore
from store_schema.engine.verify import verify_store


@dataclass(frozen=True)
class Event:
    kind: str  # "fsync" or "rename"
    path: str  # what was synced, or a rename's destination
    commits: bool = False
    """A rename that puts a ``zarr.json`` holding a commit record into place."""


class OsRecorder:
    """Wraps os.fsync / os.replace / os.rename / os.link, keeping their order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()
        real_fsync, real_replace, real_rename, real_link = os.fsync, os.replace, os.rename, os.link

        def fsync(fd: int) -> None:
            self._add(Event("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
            real_fsync(fd)

        def renaming(real):  # noqa: ANN001, ANN202 - one of os.replace/rename/link
            def rename(src, dst, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
                commits = False
                if os.path.basename(dst) == "zarr.json":
                    document = json.loads(Path(src).read_bytes())
                    commits = COMMIT_ATTR in document.get("attributes", {})
                result = real(src, dst, *args, **kwargs)
                self._add(Event("rename", os.path.realpath(dst), commits))
                return result
            return rename

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", renaming(real_replace))
        monkeypatch.setattr(os, "rename", renaming(real_rename))
        monkeypatch.setattr(os, "link", renaming(real_link))

    def _add(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)


def order_problems(events: list[Event], store: Path, subject: int, stage: str) -> list[str]:
    """What a power cut could expose for this subject-stage: files or folders synced only after
    its commit was renamed into place, and a commit rename whose folder is never synced."""
    folder = Path(os.path.realpath(store / stage_path(subject, stage)))
    meta = str(folder / "zarr.json")
    commits = [i for i, e in enumerate(events) if e.kind == "rename" and e.path == meta and e.commits]
    if len(commits) != 1:
        return [f"{meta}: {len(commits)} commit renames"]
    commit = commits[0]
    synced = [e.path for e in events[:commit] if e.kind == "fsync"]
    problems = []
    for dirpath, _, filenames in os.walk(folder):
        files = [os.path.join(dirpath, n) for n in filenames if os.path.join(dirpath, n) != meta]
        problems += [f"{f} not synced before the commit" for f in files if f not in synced]
        last_file = max((synced.index(f) for f in files if f in synced), default=-1)
        if dirpath not in synced[last_file + 1:]:
            problems.append(f"{dirpath}/ not synced after its files and before the commit")
    for parent in (folder.parent, folder.parent.parent):  # the new group's own name
        if str(parent) not in synced:
            problems.append(f"{parent}/ not synced before the commit")
    if not any(e.kind == "fsync" and e.path == str(folder) for e in events[commit + 1:]):
        problems.append(f"{folder}/ not synced after the commit's rename")
    return problems


STAGES = ["ingest", "eeg", "segment"]


def test_no_commit_record_is_renamed_into_place_before_its_chunks_are_synced(
    small_deap: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    store = tmp_path / "store.zarr"
    recorder = OsRecorder(monkeypatch)
    summary = run_chain_inline(PreprocessConfig(deap=small_deap, store=str(store), stages=STAGES))
    assert summary.ok, summary.markdown()
    for subject in (1, 2):
        for stage in STAGES:
            assert order_problems(recorder.events, store, subject, stage) == [], (subject, stage)
    # a recomputed subject-stage (old group uncommitted and removed first) keeps the order too
    recorder.events.clear()
    again = run_chain_inline(PreprocessConfig(deap=small_deap, store=str(store), subjects=[1],
                                              stages=["segment"], segment={"window_s": 2.0, "stride_s": 2.0}))
    assert [o.status for o in again.outcomes] == ["computed"]
    assert order_problems(recorder.events, store, 1, "segment") == []
    assert verify_store(FeatureStore.open(str(store), mode="r")) == []


@pytest.mark.parametrize("switch", ["env", "argument", "config"])
def test_the_switch_turns_fsync_off_and_the_check_sees_it(
    switch: str, small_deap: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store.zarr"
    config = PreprocessConfig(deap=small_deap, store=str(store), subjects=[1], stages=["ingest"],
                              durable=False if switch == "config" else None)
    if switch == "env":
        monkeypatch.setenv(ENV, "0")
    elif switch == "argument":
        monkeypatch.setattr(FeatureStore, "open", _opens_not_durable(FeatureStore.open))
    assert config.open_store().durable is False
    recorder = OsRecorder(monkeypatch)
    summary = run_chain_inline(config)
    assert summary.ok, summary.markdown()
    assert not [e for e in recorder.events if e.kind == "fsync"]
    assert any("not synced before the commit" in p for p in order_problems(recorder.events, store, 1, "ingest"))
    assert verify_store(FeatureStore.open(str(store), mode="r")) == []


def _opens_not_durable(real):  # noqa: ANN001, ANN202 - FeatureStore.open, bound to the class
    def open_not_durable(url, **kwargs):  # noqa: ANN001, ANN003, ANN202
        kwargs["durable"] = False
        return real(url, **kwargs)
    return open_not_durable

