"""Progress a person can watch: bars on a terminal, one line per finished task anywhere else.

Every long command reports through one :class:`Reporter`, chosen once by :func:`choose`:

- :class:`BarReporter` (a terminal): a rich progress bar per running task (a subject-stage, an
  epoch) with its count (frames, batches) or its latest note, an overall bar, and each task's
  final line printed above the bars when it ends;
- :class:`LineReporter` (CI, a log file, a Prefect worker): one time-stamped line per finished
  task and every problem; notes and counts are dropped, so a log holds no ``\\r`` walls and no
  line every few frames;
- :class:`Reporter` itself says nothing (the default: a library call, a worker process).

Tasks are named by strings (``s01 faces``), so one thread may start a task and another finish
it. Every method is thread-safe (one lock; rich's ``Progress`` has its own) and never raises
into the caller's work. The reporter a run uses is process-wide (:func:`use`, :func:`current`):
stages running in threads of this process reach it; stages in other processes (a process pool,
Dask workers) reach the silent default there, and the process that waits for them reports each
task's final line.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any


class Reporter:
    """The interface, silent: every call does nothing."""

    def begin(self, description: str, total: int | None = None) -> None:
        """The whole run: ``total`` tasks (bars: an overall bar that each :meth:`finish` advances)."""

    def start(self, name: str, *, total: int | None = None, unit: str = "") -> None:
        """A task begins (``total`` units of ``unit`` when known)."""

    def update(self, name: str, *, note: str | None = None, done: int | None = None,
               total: int | None = None, advance: int | None = None,
               unit: str | None = None) -> None:
        """A task's latest note and count; a task not yet started is started."""

    def finish(self, name: str, line: str | None = None, *, problem: bool = False) -> None:
        """A task ended; ``line`` says how (printed in both modes, marked when ``problem``)."""

    def say(self, line: str, *, problem: bool = False) -> None:
        """A line of its own (a warning, a fold's result): printed in both modes."""

    def close(self) -> None:
        """Stop drawing; later calls print nothing."""

    @contextmanager
    def task(self, name: str, *, total: int | None = None, unit: str = "") -> Iterator[Task]:
        """:meth:`start` ... :meth:`finish` (without a line unless :meth:`Task.finish` gave one)."""
        handle = Task(self, name)
        self.start(name, total=total, unit=unit)
        try:
            yield handle
        finally:
            if not handle.finished:
                self.finish(name)


class Task:
    """A started task of a reporter: ``advance``, ``update``, ``finish`` without repeating its name."""

    def __init__(self, reporter: Reporter, name: str) -> None:
        self.reporter, self.name, self.finished = reporter, name, False

    def advance(self, n: int = 1, *, note: str | None = None) -> None:
        self.reporter.update(self.name, advance=n, note=note)

    def update(self, *, note: str | None = None, done: int | None = None,
               total: int | None = None) -> None:
        self.reporter.update(self.name, note=note, done=done, total=total)

    def finish(self, line: str | None = None, *, problem: bool = False) -> None:
        self.finished = True
        self.reporter.finish(self.name, line, problem=problem)


class LineReporter(Reporter):
    """One line per finished task and per :meth:`say`: ``HH:MM:SS <line>``. With ``notes``
    (``--verbose``), also a line per note or count: ``s01 tokens: 40 of 400 frames``."""

    def __init__(self, stream: IO[str] | None = None, *, notes: bool = False) -> None:
        self._stream = stream
        self._notes = notes
        self._units: dict[str, str] = {}
        self._lock = threading.Lock()
        self._closed = False

    def start(self, name: str, *, total: int | None = None, unit: str = "") -> None:
        if unit:
            self._units[name] = unit

    def update(self, name: str, *, note: str | None = None, done: int | None = None,
               total: int | None = None, advance: int | None = None,
               unit: str | None = None) -> None:
        if unit:
            self._units[name] = unit
        if not self._notes or (not note and done is None):
            return
        count = "" if done is None else f"{done}{'' if total is None else f' of {total}'}"
        unit = self._units.get(name, "")
        parts = [p for p in (note, f"{count} {unit}".strip() if count else "") if p]
        self.say(f"{name}: {'; '.join(parts)}")

    def finish(self, name: str, line: str | None = None, *, problem: bool = False) -> None:
        if line:
            self.say(line, problem=problem)

    def say(self, line: str, *, problem: bool = False) -> None:
        stream = self._stream or sys.stderr
        text = f"{time.strftime('%H:%M:%S')} {line}\n"
        with self._lock:
            if self._closed:
                return
            try:
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):  # a closed or broken stream never fails the work
                pass

    def close(self) -> None:
        with self._lock:
            self._closed = True


class BarReporter(Reporter):
    """rich bars on a terminal: the running tasks, an overall bar, finished tasks' lines above.

    It draws on its own duplicate of the stream's file descriptor, so a library that silences
    the process's stderr for a moment (the face detector's native logging) does not swallow a
    frame of the display. Nothing is drawn before the first task.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        stream = stream or sys.stderr
        self._own: IO[str] | None = None
        try:
            self._own = os.fdopen(os.dup(stream.fileno()), "w", buffering=1, encoding="utf-8",
                                  errors="replace")
        except (AttributeError, OSError, ValueError):  # no descriptor (a test's StringIO)
            pass
        self._console = Console(file=self._own or stream, force_terminal=True, soft_wrap=True)
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.fields[count]}"),  # "20/40 frames"; nothing while unknown
            TimeElapsedColumn(), TextColumn("{task.fields[note]}"),
            console=self._console, transient=True, redirect_stdout=False, redirect_stderr=False)
        self._tasks: dict[str, Any] = {}
        self._units: dict[Any, str] = {}
        self._overall: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self._started = False

    def _add(self, description: str, total: int | None, unit: str) -> Any:
        if not self._started:
            self._progress.start()
            self._started = True
        task = self._progress.add_task(description, total=total, note="",
                                       count=_count(0, total, unit))
        self._units[task] = unit
        return task

    def begin(self, description: str, total: int | None = None) -> None:
        with self._lock:
            if self._closed:
                return
            if self._overall is None:
                self._overall = self._add(description, total, "")
            else:
                self._progress.update(self._overall, description=description, total=total)
                self._recount(self._overall)

    def start(self, name: str, *, total: int | None = None, unit: str = "") -> None:
        with self._lock:
            self._task_id(name, total=total, unit=unit)

    def _task_id(self, name: str, *, total: int | None = None, unit: str = "") -> Any:
        if self._closed:
            return None
        if name not in self._tasks:
            self._tasks[name] = self._add(name, total, unit)
        return self._tasks[name]

    def _recount(self, task: Any) -> None:
        shown = next(t for t in self._progress.tasks if t.id == task)
        self._progress.update(task, count=_count(int(shown.completed), shown.total,
                                                 self._units.get(task, "")))

    def update(self, name: str, *, note: str | None = None, done: int | None = None,
               total: int | None = None, advance: int | None = None,
               unit: str | None = None) -> None:
        with self._lock:
            task = self._task_id(name)
            if task is None:
                return
            if unit is not None:
                self._units[task] = unit
            fields: dict[str, Any] = {}
            if note is not None:
                fields["note"] = note
            if total is not None:
                fields["total"] = total
            if done is not None:
                fields["completed"] = done
            if advance is not None:
                fields["advance"] = advance
            self._progress.update(task, **fields)
            self._recount(task)

    def finish(self, name: str, line: str | None = None, *, problem: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            task = self._tasks.pop(name, None)
            if task is not None:
                self._progress.remove_task(task)
            if self._overall is not None:
                self._progress.advance(self._overall)
                self._recount(self._overall)
            if line:
                self._print(line, problem)

    def say(self, line: str, *, problem: bool = False) -> None:
        with self._lock:
            if not self._closed:
                self._print(line, problem)

    def _print(self, line: str, problem: bool) -> None:
        from rich.text import Text

        self._console.print(Text(line, style="yellow" if problem else ""), highlight=False)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._started:
                self._progress.stop()
            if self._own is not None:
                try:
                    self._own.close()
                except OSError:
                    pass


def _count(done: int, total: float | None, unit: str) -> str:
    """``20/40 frames``; empty while the total is unknown (a bar that only pulses)."""
    return "" if total is None else f"{done}/{int(total)} {unit}".rstrip()


def is_terminal(stream: IO[str] | None = None) -> bool:
    """``stream`` (default stderr) is an interactive terminal, not a pipe or file (and not
    ``TERM=dumb``)."""
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty()) and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


def choose(progress: bool | None = None, *, stream: IO[str] | None = None,
           local: bool = True, notes: bool = False) -> Reporter:
    """Bars when ``progress`` is True, or None and ``stream`` (stderr) is a terminal; lines
    otherwise (``notes``: every note and count too). ``local=False`` (the work runs in other
    processes: a process pool, Dask): lines."""
    if progress is None:
        progress = is_terminal(stream)
    if progress and local and not notes:
        return BarReporter(stream)
    return LineReporter(stream, notes=notes)


_SILENT = Reporter()
_current: Reporter = _SILENT
_current_lock = threading.Lock()


def current() -> Reporter:
    """The reporter of this process's run (silent when none is in use)."""
    return _current


@contextmanager
def use(reporter: Reporter) -> Iterator[Reporter]:
    """Make ``reporter`` this process's reporter for the block; close it at the end."""
    global _current
    with _current_lock:
        before, _current = _current, reporter
    try:
        yield reporter
    finally:
        with _current_lock:
            _current = before
        reporter.close()
