"""Progress that reaches the user wherever stderr goes.

On a terminal: rich bars. Anywhere else (CI, nohup, Airflow, a notebook cell): one log line
when a stage starts, the runner's summary line with its elapsed time when it ends, and a
heartbeat at most every ``heartbeat_s`` seconds while it works (naming the current bar's
count where there is one). ``quiet`` silences all of it. Stage timings (wall and CPU
seconds, child processes included) are measured here for ``stats.json``.

``NullBar`` is the one do-nothing bar: every caller that needs a bar but has no factory
uses it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

Log = Callable[[str], None]
ProgressFactory = Callable[[str, "int | None"], AbstractContextManager[Any]]
HEARTBEAT_S = 30.0


class NullBar:
    """A progress bar that shows nothing (quiet runs, library calls without a factory)."""

    def advance(self, n: int = 1) -> None:
        return None


def null_progress(_description: str, _total: int | None) -> AbstractContextManager[NullBar]:
    """A progress factory that yields a ``NullBar``."""
    from contextlib import nullcontext

    return nullcontext(NullBar())


class _RichBar:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)


@dataclass
class _Counting:
    """A bar for a log: counts what it is told; the heartbeat reads it."""

    description: str
    total: int | None
    done: int = 0

    def advance(self, n: int = 1) -> None:
        self.done += n

    def describe(self) -> str:
        if self.total:
            return f"{self.description} {self.done}/{self.total} ({100 * self.done / self.total:.0f}%)"
        return f"{self.description} {self.done}" if self.done else self.description


@dataclass
class Timing:
    """Wall and CPU seconds of a piece of work (CPU includes finished child processes)."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def as_stats(self) -> dict[str, float]:
        return {"seconds": round(self.seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3)}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@contextmanager
def timed() -> Iterator[Timing]:
    """``with timed() as t: ...`` fills ``t.seconds`` and ``t.cpu_seconds`` on exit."""
    timing = Timing()
    wall, cpu = time.perf_counter(), _cpu()
    try:
        yield timing
    finally:
        timing.seconds, timing.cpu_seconds = time.perf_counter() - wall, _cpu() - cpu


def seconds_text(seconds: float) -> str:
    """``0.4 s``, ``43 s``, ``2 min 05 s``: short and readable in a log line."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s"


@dataclass
class Heartbeat:
    """Says that a stage is still working, at most once per ``interval`` seconds.

    ``tick(now)`` is what the background thread calls; it logs only when ``interval``
    seconds passed since the start or the last beat.
    """

    name: str
    log: Log
    interval: float = HEARTBEAT_S
    started: float = field(default_factory=time.monotonic)
    bar: _Counting | None = None
    _last: float | None = None

    def tick(self, now: float) -> bool:
        last = self.started if self._last is None else self._last
        if now - last < self.interval:
            return False
        self._last = now
        doing = f", {self.bar.describe()}" if self.bar is not None else ""
        self.log(f"{self.name}: still running after {seconds_text(now - self.started)}{doing}")
        return True


class Reporter:
    """Progress for a pipeline run: bars on a terminal, log lines elsewhere, nothing when quiet.

    Args:
        quiet: no bars, no start lines, no heartbeats.
        log: where log lines go (default: stderr).
        tty: force terminal (True) or log (False) mode; default: ``sys.stderr.isatty()``.
        heartbeat_s: the least time between two heartbeats of a stage.
    """

    def __init__(self, *, quiet: bool, log: Log | None = None, tty: bool | None = None, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.quiet = quiet
        self.log: Log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.heartbeat_s = heartbeat_s
        self._beat: Heartbeat | None = None

    @property
    def logs_lines(self) -> bool:
        return not self.quiet and not self.tty

    def factory(self, description: str, total: int | None) -> AbstractContextManager[Any]:
        """A bar: rich on a terminal, counted for the heartbeat in a log, a ``NullBar`` when quiet."""
        if self.quiet:
            return null_progress(description, total)
        if self.tty:
            return _rich_bar(description, total)
        return self._counted(description, total)

    @contextmanager
    def _counted(self, description: str, total: int | None) -> Iterator[_Counting]:
        bar = _Counting(description, total)
        beat = self._beat
        outer = beat.bar if beat is not None else None
        if beat is not None:
            beat.bar = bar
        try:
            yield bar
        finally:
            if beat is not None:  # a bar inside another (embedding inside a stage's pass) hands the beat back
                beat.bar = outer

    @contextmanager
    def stage(self, name: str, start: str | None) -> Iterator[Timing]:
        """Time a stage; in log mode say ``"<name>: start, <start>"`` and beat while it runs.

        ``start=None`` beats without a start line: ingest, whose user errors (an empty file)
        must stay the one line the CLI prints.
        """
        if not self.logs_lines:
            with timed() as timing:
                yield timing
            return
        if start is not None:
            self.log(f"{name}: start, {start}")
        self._beat = Heartbeat(name, self.log, self.heartbeat_s)
        stop = threading.Event()
        thread = threading.Thread(target=_beat_until, args=(self._beat, stop), name=f"heartbeat-{name}", daemon=True)
        thread.start()
        try:
            with timed() as timing:
                yield timing
        finally:
            stop.set()
            thread.join()
            self._beat = None


def _beat_until(beat: Heartbeat, stop: threading.Event) -> None:
    while not stop.wait(min(beat.interval, 1.0)):
        beat.tick(time.monotonic())


@contextmanager
def _rich_bar(description: str, total: int | None) -> Iterator[_RichBar]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, transient=True) as progress:
        yield _RichBar(progress, progress.add_task(description, total=total))


def make_progress_factory(quiet: bool) -> ProgressFactory:
    """A factory ``(description, total) -> context manager yielding a bar with .advance(n)``.

    Rich bars on a terminal; elsewhere (or when quiet) a ``NullBar``: a caller outside a
    pipeline run (training) logs its own lines.
    """
    if quiet or not sys.stderr.isatty():
        return null_progress
    return _rich_bar
