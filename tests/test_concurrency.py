"""Concurrent writers and readers of one store: subject-stage locks (store_schema.engine.locks).

Contention is forced, never hoped for: the test itself holds a subject-stage lock (as a third
run would) until every process under test has said it is waiting for it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from flows.cli import app
from store_schema.contract.layout import Stage
from store_schema.engine.locks import lock_dir, subject_stage_lock
from store_schema.run.runner import StageOutcome, StageOutput, run_stage
from store_schema.engine.store import FeatureStore
from store_schema.engine.verify import pending_stages, verify_store
from tests.conftest import ica_solution

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EEG_STAGES = ["ingest", "eeg", "segment"]
GUARD_S = 300
"""Only a guard against a hang (a broken lock would deadlock nothing: it fails much sooner)."""

INLINE_RUN = """
import sys
from flows.config import PreprocessConfig
from flows.preprocess import run_chain_inline
summary = run_chain_inline(PreprocessConfig(deap=sys.argv[1], store=sys.argv[2],
                                            stages=["ingest", "eeg", "segment"]))
print(summary.model_dump_json())
"""


# -- threads of one process ----------------------------------------------------------------


class Params(BaseModel):
    cutoff: float = 1.0


def ingest_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t, n = 2, 256
    return {"eeg": rng.normal(size=(t, 32, n)).astype("f4"), "eog": rng.normal(size=(t, 2, n)).astype("f4"),
            "ratings": rng.uniform(1, 9, size=(t, 4)), "experiment_id": np.arange(1, t + 1, dtype="i4"),
            "presentation_trial": np.array([2, 1], dtype="i4")}


def eeg_arrays() -> dict[str, np.ndarray]:
    return {"eeg": np.ones((2, 32, 256), "f4"), "ica_excluded": np.array([0], "i4"),
            "ica_scores": np.zeros((2, 5), "f4"), **ica_solution(5)}


class WaitWatcher(logging.Handler):
    """Sets an event when the runner logs that it waits for ``where``."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.needle = f"waiting for {where} "
        self.seen = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        if self.needle in message:
            self.seen.set()


@contextmanager
def watching(where: str) -> Iterator[WaitWatcher]:
    watcher = WaitWatcher(where)
    logger = logging.getLogger("store_schema.run.runner")
    logger.addHandler(watcher)
    try:
        yield watcher
    finally:
        logger.removeHandler(watcher)


def in_thread(target: Callable[[], StageOutcome]) -> tuple[threading.Thread, list[StageOutcome]]:
    result: list[StageOutcome] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting (hang guard)"
        time.sleep(0.01)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_two_threads_on_one_subject_stage_take_turns_and_the_second_skips(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = str(tmp_path / "store.zarr") if where == "local" else f"memory://threads-{tmp_path.name}"
    store = FeatureStore.open(url)
    inside, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def compute() -> StageOutput:
        calls.append(threading.current_thread().name)
        inside.set()
        until(release.is_set)
        return StageOutput(arrays=ingest_arrays())

    def stage() -> StageOutcome:
        return run_stage(store, subject=1, stage="ingest", params=Params(), code_version="1",
                         inputs={"dat": "x"}, compute=compute)

    with watching("subjects/s01/ingest") as watcher:
        first, first_result = in_thread(stage)
        until(inside.is_set)
        second, second_result = in_thread(stage)
        # the second either waits (correct) or gets into compute / finishes (a broken lock)
        until(lambda: watcher.seen.is_set() or len(calls) > 1 or not second.is_alive())
        release.set()
        first.join(GUARD_S)
        second.join(GUARD_S)
    assert watcher.seen.is_set(), watcher.messages
    assert len(calls) == 1
    (a,), (b,) = first_result, second_result
    assert (a.status, b.status) == ("computed", "skipped")
    assert a.waited_for == [] and b.fingerprint == a.fingerprint
    assert b.waited_for == [b.waited_for[0]] and b.waited_for[0].startswith(
        "subjects/s01/ingest held by another task of this process (pid ")
    assert b.wait_note().startswith("waited ") and b.waited_seconds >= 0
    assert verify_store(store) == []
    if where == "local":
        assert lock_dir(url) == tmp_path / "store.zarr.locks"
        assert sorted(p.name for p in (tmp_path / "store.zarr.locks").iterdir()) == ["s01.ingest.lock"]
        assert not [p for p in (tmp_path / "store.zarr").rglob("*lock*")]
    else:  # memory:// lives in this process: the process-local lock is complete, no warning
        assert lock_dir(url) is None
        assert not [r for r in caplog.records if "is not on a local disk" in r.getMessage()]


def test_an_object_store_gets_process_local_locks_and_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    url = "s3://some-bucket/deap.zarr"  # the locks never touch the store itself
    assert lock_dir(url) is None
    for _ in range(2):
        with subject_stage_lock(url, 1, "eeg", reads=["ingest"]) as waits:
            assert not waits.waited
    warnings = [r.getMessage() for r in caplog.records if "is not on a local disk" in r.getMessage()]
    assert warnings == [
        "store s3://some-bucket/deap.zarr is not on a local disk: subject-stage locks are "
        "process-local there, so two preprocess processes on it at once may write the same "
        "subject-stage; run them one after another or on disjoint --subjects"]


def test_a_stage_being_read_is_not_rewritten_until_its_reader_committed(tmp_path: Path) -> None:
    store = FeatureStore.open(str(tmp_path / "store.zarr"))
    old = run_stage(store, subject=1, stage="ingest", params=Params(), code_version="1",
                    inputs={"dat": "x"}, compute=lambda: StageOutput(arrays=ingest_arrays(0)))
    reading, release = threading.Event(), threading.Event()
    seen: list[np.ndarray] = []

    def clean() -> StageOutput:  # reads ingest, slowly
        reading.set()
        until(release.is_set)
        seen.append(store.read(1, "ingest", "eeg"))
        return StageOutput(arrays=eeg_arrays())

    with watching("subjects/s01/ingest") as watcher:
        reader, reader_result = in_thread(lambda: run_stage(
            store, subject=1, stage="eeg", params=Params(), code_version="1",
            inputs={"ingest": old.fingerprint}, compute=clean))
        until(reading.is_set)
        writer, writer_result = in_thread(lambda: run_stage(
            store, subject=1, stage="ingest", params=Params(cutoff=2.0), code_version="1",
            inputs={"dat": "x"}, compute=lambda: StageOutput(arrays=ingest_arrays(1))))
        until(lambda: watcher.seen.is_set() or not writer.is_alive())
        release.set()
        reader.join(GUARD_S)
        writer.join(GUARD_S)
    assert watcher.seen.is_set(), watcher.messages
    (eeg,), (ingest,) = reader_result, writer_result
    assert (eeg.status, ingest.status) == ("computed", "computed")
    np.testing.assert_array_equal(seen[0], ingest_arrays(0)["eeg"])  # read before the rewrite
    assert ingest.waited_for[0].startswith("subjects/s01/ingest held by another task of this process")
    # consistent: eeg was committed from the old ingest, which verify now calls stale
    assert [str(p) for p in verify_store(store)] == [
        "subjects/s01/eeg: stale: upstream stage 'ingest' was recomputed after it"]


def test_a_stage_whose_input_was_rewritten_while_it_waited_fails_as_transient(tmp_path: Path) -> None:
    store = FeatureStore.open(str(tmp_path / "store.zarr"))
    old = run_stage(store, subject=1, stage="ingest", params=Params(), code_version="1",
                    inputs={"dat": "x"}, compute=lambda: StageOutput(arrays=ingest_arrays(0)))
    computing, release = threading.Event(), threading.Event()

    def slow_ingest() -> StageOutput:
        computing.set()
        until(release.is_set)
        return StageOutput(arrays=ingest_arrays(1))

    cleaned: list[int] = []
    with watching("subjects/s01/ingest") as watcher:
        writer, _ = in_thread(lambda: run_stage(
            store, subject=1, stage="ingest", params=Params(cutoff=2.0), code_version="1",
            inputs={"dat": "x"}, compute=slow_ingest))
        until(computing.is_set)
        # eeg named its inputs from the old ingest record, then reaches the lock
        reader, reader_result = in_thread(lambda: run_stage(
            store, subject=1, stage="eeg", params=Params(), code_version="1",
            inputs={"ingest": old.fingerprint},
            compute=lambda: cleaned.append(1) or StageOutput(arrays=eeg_arrays())))
        until(lambda: watcher.seen.is_set() or not reader.is_alive())
        release.set()
        writer.join(GUARD_S)
        reader.join(GUARD_S)
    assert watcher.seen.is_set(), watcher.messages
    (eeg,) = reader_result
    assert eeg.status == "failed" and eeg.transient and cleaned == []
    assert "subjects/s01/ingest was recomputed (by another run) after 'eeg' named its inputs" in eeg.error
    assert store.state(1, "eeg") == "absent" and verify_store(store) == []


def _lock_in_child(url: str, conn) -> None:  # noqa: ANN001 - a multiprocessing Connection
    with subject_stage_lock(url, 1, "ingest", on_wait=conn.send):
        conn.send("acquired")


def test_a_forked_child_waits_for_its_parents_lock_instead_of_inheriting_it(tmp_path: Path) -> None:
    import multiprocessing

    url = str(tmp_path / "store.zarr")
    fork = multiprocessing.get_context("fork")
    parent_end, child_end = fork.Pipe()
    with subject_stage_lock(url, 1, "ingest"):
        child = fork.Process(target=_lock_in_child, args=(url, child_end), daemon=True)
        child.start()
        assert parent_end.poll(GUARD_S)
        first = parent_end.recv()
    # the child held none of the parent's locks, and closing its inherited copy of the lock file
    # did not release the parent's: it waited, and got the lock once the parent let go
    assert first.startswith(f"waiting for subjects/s01/ingest (exclusive), held by another run (pid {os.getpid()} ")
    assert parent_end.poll(GUARD_S) and parent_end.recv() == "acquired"
    child.join(GUARD_S)
    assert child.exitcode == 0


# -- processes: two preprocess runs, and training, on one store ----------------------------


class Watched:
    """A subprocess whose stderr is read line by line as it comes (stdout kept for the end)."""

    def __init__(self, args: list[str], *, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.proc = subprocess.Popen(args, cwd=ROOT, env=dict(env or os.environ), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.done = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self.done = True
            self._cond.notify_all()

    def said(self, text: str) -> bool:
        with self._cond:
            return any(text in line for line in self.lines)

    def wait_for_line(self, text: str) -> bool:
        """True once a stderr line contains ``text``; False if the process ended without one."""
        with self._cond:
            self._cond.wait_for(lambda: self.done or any(text in line for line in self.lines),
                                timeout=GUARD_S)
            return any(text in line for line in self.lines)

    def finish(self) -> tuple[int, str]:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout.read()
        code = self.proc.wait(timeout=GUARD_S)
        self._reader.join(GUARD_S)
        self.log.write_text("".join(self.lines))
        return code, stdout

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)


def summary_json(stdout: str) -> dict:
    """The run summary, the last thing printed. MNE's INFO lines can come before it on stdout: its
    log level is process-global, so two EEG tasks in threads race on it (not this test's concern)."""
    return json.loads(stdout[max(stdout.rfind('{\n  "outcomes"'), stdout.rfind('{"outcomes"')):])


def inline_run(deap: Path, store: Path, log: Path) -> Watched:
    return Watched([sys.executable, "-c", INLINE_RUN, str(deap), str(store)], log=log)


def cli_run(deap: Path, store: Path, log: Path, env: dict[str, str] | None = None) -> Watched:
    return Watched([str(BIN / "milmer"), "preprocess", "--deap", str(deap), "--store", str(store),
                    "--stages", ",".join(EEG_STAGES), "--json"], log=log, env=env)


def test_two_preprocess_runs_at_once_compute_each_subject_stage_once(
        small_deap: Path, tmp_path: Path, prefect_api: tuple[str, dict[str, str]]) -> None:
    store = tmp_path / "store.zarr"
    waiting = "waiting for subjects/s01/ingest (exclusive), held by another run (pid "
    runs: list[Watched] = []
    try:
        with subject_stage_lock(str(store), 1, "ingest"):  # a third writer, holding s01's ingest
            runs = [cli_run(small_deap, store, tmp_path / "cli.log", prefect_api[1]),
                    inline_run(small_deap, store, tmp_path / "inline.log")]
            for run in runs:
                assert run.wait_for_line(waiting), "".join(run.lines)[-3000:]
        results = [run.finish() for run in runs]
    finally:
        for run in runs:
            run.kill()
    summaries = []
    for (code, stdout), run in zip(results, runs):
        assert code == 0, "".join(run.lines)[-3000:]
        summaries.append([StageOutcome.model_validate(o) for o in summary_json(stdout)["outcomes"]])

    by_run = [{(o.subject, o.stage.value): o for o in outcomes} for outcomes in summaries]
    keys = {(s, stage) for s in (1, 2) for stage in EEG_STAGES}
    assert set(by_run[0]) == set(by_run[1]) == keys
    opened = FeatureStore.open(str(store), mode="r")
    for key in sorted(keys):
        pair = [by_run[0][key], by_run[1][key]]
        # computed by exactly one run, found committed (and skipped) by the other
        assert sorted(o.status for o in pair) == ["computed", "skipped"], (key, pair)
        computed = next(o for o in pair if o.status == "computed")
        assert all(o.fingerprint == computed.fingerprint for o in pair)
        assert opened.record(*key).fingerprint == computed.fingerprint
    for run_outcomes in by_run:  # both runs really waited for the held lock
        note = run_outcomes[(1, "ingest")].wait_note()
        assert note and "subjects/s01/ingest held by another run (pid " in note
    assert verify_store(opened) == [] and pending_stages(opened) == []

    # the lock files live beside the store; nothing that reads the store sees them
    assert sorted(p.name for p in (tmp_path / "store.zarr.locks").iterdir()) == sorted(
        f"s{s:02d}.{stage}.lock" for s, stage in keys)
    assert not [p for p in store.rglob("*") if "lock" in p.name]
    assert opened.subjects() == [1, 2]
    info = CliRunner().invoke(app, ["store", "info", "--json", str(store)])
    assert info.exit_code == 0
    assert sorted((r["subject"], r["stage"], r["state"]) for r in json.loads(info.output)["stages"]) == [
        (s, stage, "committed") for s, stage in sorted(keys)]
    verify = CliRunner().invoke(app, ["store", "verify", str(store)])
    assert verify.exit_code == 0 and "ok: 6 committed subject-stages verified" in verify.output


def test_training_while_preprocessing_sees_only_committed_subjects(small_deap: Path, tmp_path: Path) -> None:
    from train.data import StoreData

    store = tmp_path / "store.zarr"

    def check(expected: list[int] | None = None) -> list[int]:
        """Open the training data; everything it lists is committed and reads back as recorded."""
        data = StoreData.open(str(store), needs_tokens=False)
        opened = FeatureStore.open(str(store), mode="r")
        for info in data.subjects:
            record = opened.record(info.subject, Stage.segment)
            assert record is not None and record.fingerprint == info.segment_fingerprint
            for name, recorded in record.arrays.items():
                assert opened.read(info.subject, Stage.segment, name).shape == tuple(recorded.shape)
        batch = next(data.batches(np.arange(len(data)), batch_size=len(data), shuffle=False, face=False))
        assert batch.eeg.shape == (sum(i.n_segments for i in data.subjects), 32, 384)
        if expected is not None:
            assert data.subject_numbers == expected
        return data.subject_numbers

    run = None
    try:
        with subject_stage_lock(str(store), 2, "eeg"):  # the run stops before s02's eeg
            run = inline_run(small_deap, store, tmp_path / "inline.log")
            assert run.wait_for_line("waiting for subjects/s02/eeg (exclusive)"), "".join(run.lines)
            check(expected=[1])  # s01 complete, s02 only ingested
            assert FeatureStore.open(str(store), mode="r").state(2, "ingest") == "committed"
        seen = []
        while run.proc.poll() is None:  # s02's eeg and segment are being written meanwhile
            seen.append(tuple(check()))
        code, _ = run.finish()
    finally:
        if run is not None:
            run.kill()
    assert code == 0, "".join(run.lines)
    assert set(seen) <= {(1,), (1, 2)}
    check(expected=[1, 2])
