"""Progress a person can watch: ``milmer preprocess`` draws bars on a terminal (here a
pseudo-terminal) and prints one line per subject-stage anywhere else; the reporter is
thread-safe in both modes."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import struct
import subprocess
import termios
import threading
import time
from io import StringIO
from pathlib import Path

import pytest

from pipeline.synth import SynthParams, write_synthetic_deap
from store_schema.engine.store import FeatureStore
from store_schema.run.progress import BarReporter, LineReporter, Reporter, choose, current, use
from tests.servers import BIN

DATA = SynthParams(subjects=2, trials=2, seconds=6, seed=0, fps=10.0)
"""Trials of 6 s: two segments each, and long enough that MNE's filter does not warn."""
CHEAP = {"eeg": {"ica_n_components": 4, "ica_max_iter": 50}}
"""A small ICA: these tests are about what the run prints, not what ICA finds."""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, str], Path]:
    """``milmer preprocess --stages faces`` on a tiny dataset whose upstream stages are
    committed (built here in-process: the CLI runs pay for faces, not ICA), with the session's
    Prefect API (started once for the in-process flow tests; each CLI run would otherwise start
    a temporary one)."""
    from prefect.client.orchestration import get_client

    from flows.config import PreprocessConfig
    from flows.preprocess import run_chain_inline

    root = tmp_path_factory.mktemp("progress")
    write_synthetic_deap(out=root / "DEAP", params=DATA)
    (root / "cheap.json").write_text(json.dumps(CHEAP))
    built = run_chain_inline(PreprocessConfig.model_validate(
        {**CHEAP, "deap": root / "DEAP", "store": str(root / "upstream.zarr"),
         "stages": ["ingest", "eeg", "segment"]}))
    assert built.ok, built.outcomes
    with get_client(sync_client=True) as client:
        api = str(client.api_url).rstrip("/")
    env = {**os.environ, "PREFECT_API_URL": api, "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    args = [str(BIN / "milmer"), "preprocess", "--deap", str(root / "DEAP"), "--config",
            str(root / "cheap.json"), "--stages", "faces"]
    return args, env, root


def store_copy(root: Path, name: str) -> Path:
    shutil.copytree(root / "upstream.zarr", root / name)
    return root / name


def in_terminal(args: list[str], env: dict[str, str], *, timeout: float = 300) -> tuple[int, str]:
    """Run ``args`` with stdin, stdout and stderr on a 120 x 40 pseudo-terminal; everything it
    drew, and its exit code."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_run_of_preprocess_draws_bars_with_the_frames_of_the_faces_stage(
    cli: tuple[list[str], dict[str, str], Path]
) -> None:
    args, env, root = cli
    store = store_copy(root, "tty.zarr")
    code, drawn = in_terminal([*args, "--store", str(store), "--subjects", "1"], env)
    text = ANSI.sub("", drawn)
    assert code == 0, text[-3000:]
    assert "\x1b[?25l" in drawn  # rich hides the cursor while it draws live
    frames = FeatureStore.open(str(store), mode="r").read(1, "segment", "eeg").shape[0] * 10
    # a bar of s01 faces counting its sampled frames, and an overall bar of subject-stages
    assert re.search(rf"s01 faces\s+━[━╸╺ ]*\s+\d+/{frames} frames", text), text[-3000:]
    assert re.search(r"subject-stages\s+━[━╸╺ ]*\s+\d/1", text), text[-3000:]
    assert "s01 faces: computed in " in text  # the finished subject-stage's line, above the bars
    assert "LiteRT" not in text and "XNNPACK" not in text  # the detector's native chatter


def test_a_run_without_a_terminal_prints_one_line_per_subject_stage(
    cli: tuple[list[str], dict[str, str], Path]
) -> None:
    args, env, root = cli
    store = store_copy(root, "pipe.zarr")
    run = subprocess.run([*args, "--stages", "segment,faces", "--force", "--store", str(store),
                          "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    # MediaPipe's native glog lines are filtered at detector set-up, first inference and close;
    # LiteRT's "Input tensor memory is not aligned" can also come from a later inference (it
    # depends on where the frame's buffer lands): not ours to print, not counted here.
    from pipeline.stages.faces.detect import NATIVE_NOISE

    lines = [line for line in run.stderr.splitlines() if not NATIVE_NOISE.match(line)]
    pattern = re.compile(r"\d\d:\d\d:\d\d (s0[12]) (\w+): computed in \d+\.\d s")
    said = [pattern.fullmatch(line) for line in lines]
    assert all(said), run.stderr  # nothing else: no Prefect engine lines, no frame counts
    assert sorted(m.groups() for m in said) == sorted(
        (f"s{s:02d}", stage) for s in (1, 2) for stage in ("segment", "faces"))
    assert "\x1b" not in run.stderr and "\r" not in run.stderr
    assert json.loads(run.stdout[run.stdout.rfind('{\n  "outcomes"'):])["outcomes"]


def hammer(reporter: Reporter, threads: int = 8, steps: int = 50) -> None:
    """Tasks started, counted, noted and finished from many threads at once, finished by
    another thread than the one that started them (as the flow does)."""
    started = threading.Barrier(threads)

    def work(i: int) -> None:
        started.wait()
        reporter.start(f"task {i}", total=steps, unit="frames")
        for k in range(steps):
            reporter.update(f"task {i}", done=k + 1, note=f"step {k}")

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    finishers = [threading.Thread(target=reporter.finish, args=(f"task {i}", f"task {i}: done"))
                 for i in range(threads)]
    for f in finishers:
        f.start()
    for f in finishers:
        f.join()


def test_lines_say_one_line_per_finished_task_from_many_threads() -> None:
    out = StringIO()
    reporter = LineReporter(out)
    hammer(reporter)
    reporter.say("a problem", problem=True)
    lines = out.getvalue().splitlines()
    assert sorted(line.split(" ", 1)[1] for line in lines) == sorted(
        [f"task {i}: done" for i in range(8)] + ["a problem"])


def test_bars_survive_many_threads_and_keep_each_final_line() -> None:
    out = StringIO()
    reporter = BarReporter(out)
    reporter.begin("tasks", total=8)
    hammer(reporter)
    reporter.close()
    reporter.finish("late", "after close: not printed")
    text = ANSI.sub("", out.getvalue())
    assert all(f"task {i}: done" in text for i in range(8)) and "after close" not in text


def test_the_choice_follows_the_terminal_and_the_flag(tmp_path: Path) -> None:
    with (tmp_path / "log").open("w") as file:
        assert type(choose(None, stream=file)) is LineReporter
        assert type(choose(False, stream=file)) is LineReporter
        bars = choose(True, stream=file)
        assert type(bars) is BarReporter
        bars.close()
        assert type(choose(True, stream=file, local=False)) is LineReporter  # Dask, processes
        assert type(choose(True, stream=file, notes=True)) is LineReporter  # --verbose
    reporter = LineReporter(StringIO())
    with use(reporter):
        assert current() is reporter
    assert type(current()) is Reporter  # silent again
