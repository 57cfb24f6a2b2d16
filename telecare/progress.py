"""Progress of the long commands (``sim run``, ``sim export``, ``sim replay``, ``analyse``, ``baseline warm``).

A rich progress bar on standard error while standard error is a terminal, nothing otherwise: a pipe, a log file
or a test reads only the lines the command always prints (its final summary). rich comes with typer, which the
command line is built on.

The bar follows a stream the command consumes anyway (:meth:`Bar.tap`): counting an item costs an addition; the
bar is redrawn at most a few times a second, so a year of a city's readings pays nothing noticeable for it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")
CHECK_EVERY = 512  # items between looks at the clock
REDRAW_EVERY_S = 0.2


def on_terminal() -> bool:
    """Whether a person is watching standard error (a bar would be drawn)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by something without isatty, or closed
        return False


class Bar:
    """One task's bar, or nothing when standard error is not a terminal (every method then does nothing)."""

    def __init__(self, progress: Progress | None, description: str, total: float | None, status: str = "") -> None:
        self._progress = progress
        self._task = progress.add_task(description, total=total, status=status) if progress is not None else None
        self.count = 0  # items seen by tap(), shown or not
        self._next_draw = 0.0

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def update(self, completed: float | None = None, status: str | None = None) -> None:
        if self._progress is None or self._task is None:
            return
        if status is None:
            self._progress.update(self._task, completed=completed)
        else:
            self._progress.update(self._task, completed=completed, status=status)

    def tap(self, items: Iterable[T], position: Callable[[T], float] | None = None,
            status: Callable[[T, int], str] | None = None) -> Iterator[T]:
        """``items`` unchanged, counted; the bar set to ``position(item)`` (default: the count) every so often."""
        for item in items:
            self.count += 1
            if self._progress is not None and self.count % CHECK_EVERY == 1:
                self._draw(item, position, status)
            yield item

    def _draw(self, item: T, position: Callable[[T], float] | None, status: Callable[[T, int], str] | None
              ) -> None:
        now = time.monotonic()
        if now < self._next_draw:
            return
        self._next_draw = now + REDRAW_EVERY_S
        self.update(position(item) if position else self.count, status(item, self.count) if status else None)


@contextmanager
def progress_bar(description: str, total: float | None, *, show: bool | None = None, status: str = ""
                 ) -> Iterator[Bar]:
    """A bar for the duration of the block, on standard error; ``show`` None: only when it is a terminal.
    ``status``: what it says until the first item comes."""
    if not (on_terminal() if show is None else show):
        yield Bar(None, description, total)
        return
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("elapsed,"),
                        TimeRemainingColumn(), TextColumn("left"), console=Console(stderr=True), transient=True)
    with progress:
        yield Bar(progress, description, total, status)


def simulated(time_ms: int) -> str:
    """A simulated moment for a bar: ``Tue 06 Jan 14:10`` (UTC, as the simulator's days are)."""
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%a %d %b %H:%M")


def moment(time_ms: int) -> str:
    """A recording's moment for a bar: ``03 Mar 2026 14:10`` (UTC, as the neutral CSV's times are)."""
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%d %b %Y %H:%M")


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 home``, ``3 homes``, ``41,200 readings``."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def count_rows(path: object) -> int | None:
    """Data rows of a CSV file (lines but the header) for a bar's total, cheaply; None when it cannot be read."""
    try:
        with open(str(path), "rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return None
    return max(0, lines - 1)
