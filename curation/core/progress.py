"""Progress bars: rich bars on a terminal, nothing when quiet or when stderr is not a TTY."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any


class _Bar:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)


class _Null:
    def advance(self, n: int = 1) -> None:
        return None


def make_progress_factory(quiet: bool) -> Callable[[str, int | None], AbstractContextManager[Any]]:
    """A factory ``(description, total) -> context manager yielding a bar with .advance(n)``."""
    show = not quiet and sys.stderr.isatty()

    @contextmanager
    def factory(description: str, total: int | None) -> Iterator[Any]:
        if not show:
            yield _Null()
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, transient=True) as progress:
            yield _Bar(progress, progress.add_task(description, total=total))

    return factory
