"""Progress of long loops: a Rich bar on a terminal, plain lines on stderr otherwise, so a log file can follow a run.

One API for every long loop (train steps, eval candidates, decide probes, data prepare)::

    with ProgressDisplay("train", enabled=progress) as display:
        steps = display.task("step", total_steps)
        for ...:
            steps.advance(1, {"loss": loss, "lr": lr, "tok/s": tps})

When standard output is not a terminal (``tunewise train > train.log``, a CI log, ``nohup``), a line like
``train step 40/465 (8.6%) loss 0.8123 lr 9.8e-04 tok/s 112 eta 41m12s`` is written to stderr on a task's first
update, on its last, when it closes short of its total, and otherwise at most every ``TUNEWISE_PROGRESS_EVERY_S``
seconds (default 30; 0 prints every update).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from rich import get_console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from tunewise.errors import InputError

ENV_EVERY_S = "TUNEWISE_PROGRESS_EVERY_S"
DEFAULT_EVERY_S = 30.0

Stats = Mapping[str, float | int | str]


def progress_every_s() -> float:
    """Seconds between plain progress lines: ``TUNEWISE_PROGRESS_EVERY_S``, else 30.

    Raises:
        InputError: the variable is set to something other than a number of seconds >= 0.
    """
    raw = os.environ.get(ENV_EVERY_S, "").strip()
    if not raw:
        return DEFAULT_EVERY_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InputError(f"must be a number of seconds >= 0, got {raw!r}", field=ENV_EVERY_S)
    return value


def stdout_is_interactive() -> bool:
    """Whether a Rich bar can be drawn where it always was: standard output is a terminal (or a Jupyter kernel)."""
    try:
        if sys.stdout.isatty():
            return True
    except (AttributeError, ValueError):  # no stdout, or one already closed
        return False
    return get_console().is_jupyter


def format_duration(seconds: float) -> str:
    """``41m12s``, ``2h05m``, ``7s``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_stats(stats: Stats) -> str:
    """``loss 0.8123 lr 9.8e-04 tok/s 112``: four decimals, scientific below 0.01, whole numbers from 100."""
    return " ".join(f"{key} {_format_value(value)}" for key, value in stats.items())


def _format_value(value: float | int | str) -> str:
    if isinstance(value, str | bool | int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 1e-2:
        return f"{value:.1e}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.4f}"


class _StatsColumn(ProgressColumn):
    """A task's stats, on one line: cut with an ellipsis rather than squeezing the bar."""

    def render(self, task: Any) -> Text:
        return Text(task.fields.get("stats", ""), no_wrap=True, overflow="ellipsis")


class ProgressTask:
    """One counted piece of work (training steps, a candidate's examples, a probe's rounds) within a display."""

    def __init__(self, display: ProgressDisplay, name: str, total: int, done: int, rate_unit: str | None) -> None:
        self.name, self.total, self.done = name, total, done
        self.stats: dict[str, float | int | str] = {}
        self._display, self._rate_unit = display, rate_unit
        self._started = display.clock()
        self._start_done = done
        self._first: tuple[float, int] | None = None  # (time, done) of the first update: the rate's baseline
        self._last_line_at: float | None = None
        self._printed: tuple[int, str] | None = None
        self._rich_id: Any = None

    def advance(self, n: int = 1, stats: Stats | None = None) -> None:
        """``n`` more units done; ``stats`` are merged into the shown ones (a value stays until replaced)."""
        self.update(self.done + n, stats)

    def update(self, done: int, stats: Stats | None = None) -> None:
        """``done`` units done so far; ``stats`` as in :meth:`advance`."""
        self.done = done
        if stats:
            self.stats.update(stats)
        self._display._updated(self)

    def line(self, now: float, *, closing: bool = False) -> str:
        """The plain progress line at time ``now``."""
        pct = 100.0 * self.done / self.total if self.total else 100.0
        parts = [self._display.job, self.name, f"{self.done}/{self.total}", f"({pct:.1f}%)"]
        if self.stats:
            parts.append(format_stats(self.stats))
        rate = self._rate(now)
        if self._rate_unit and rate is not None:
            parts.append(f"{self._rate_unit}/s {rate:.0f}" if rate >= 100 else f"{self._rate_unit}/s {rate:.1f}")
        if self.done >= self.total or closing:
            parts.append(f"took {format_duration(now - self._started)}")
        else:
            parts.append(f"eta {format_duration((self.total - self.done) / rate) if rate else '?'}")
        return " ".join(parts)

    def _rate(self, now: float) -> float | None:
        """Units per second since the first update (so a resumed run's or a cache's head start is not counted),
        or since the start before a second update."""
        since, base = self._started, self._start_done
        if self._first is not None and self.done > self._first[1] and now > self._first[0]:
            since, base = self._first
        if self.done <= base or now <= since:
            return None
        return (self.done - base) / (now - since)

    def _plain_due(self, now: float, every_s: float) -> bool:
        if self._first is None:
            self._first = (now, self.done)
            return True
        if self.done >= self.total:
            return self._unprinted()
        return self._last_line_at is None or now - self._last_line_at >= every_s

    def _mark_printed(self, now: float) -> None:
        self._last_line_at = now
        self._printed = (self.done, format_stats(self.stats))

    def _unprinted(self) -> bool:
        return self._first is not None and self._printed != (self.done, format_stats(self.stats))


class ProgressDisplay:
    """Progress of one long job (``train``, ``eval``, ``decide``, ``prepare``): a context manager, or ``start()`` /
    ``close()``.

    Args:
        job: the first word of each plain line.
        enabled: ``False`` shows nothing at all.
        interactive: draw a Rich bar (``True``) or write plain lines (``False``); default: a Rich bar when standard
            output is a terminal.
        every_s: seconds between plain lines (default ``TUNEWISE_PROGRESS_EVERY_S``, else 30).
        clock: seconds, monotonic (tests inject their own).
        stream: where plain lines go (default: ``sys.stderr`` at the time of writing).

    Raises:
        InputError: ``TUNEWISE_PROGRESS_EVERY_S`` is not a number of seconds.
    """

    def __init__(
        self,
        job: str,
        *,
        enabled: bool = True,
        interactive: bool | None = None,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ) -> None:
        self.job, self.clock, self._stream = job, clock, stream
        if not enabled:
            self.mode = "off"
        else:
            self.mode = "rich" if (stdout_is_interactive() if interactive is None else interactive) else "plain"
        self.every_s = (progress_every_s() if every_s is None else every_s) if self.mode == "plain" else 0.0
        self._tasks: list[ProgressTask] = []
        self._rich: Any = None
        self._lock = threading.Lock()  # backends may report from worker threads
        self._closed = False

    def start(self) -> ProgressDisplay:
        """Return the display, ready for tasks (a Rich bar starts drawing with the first task: none, no bar)."""
        return self

    def _start_rich(self) -> None:
        if self._rich is None:
            # The stats take the room left and are cut short on a narrow terminal; the bar and counts never are.
            self._rich = Progress(
                TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
                BarColumn(),
                MofNCompleteColumn(table_column=Column(no_wrap=True)),
                TimeElapsedColumn(table_column=Column(no_wrap=True)),
                TimeRemainingColumn(table_column=Column(no_wrap=True)),
                _StatsColumn(table_column=Column(ratio=1, min_width=0, overflow="ellipsis")),
                transient=False,
            )
            self._rich.start()

    def __enter__(self) -> ProgressDisplay:
        return self.start()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(final=exc_type is None)

    def task(self, name: str, total: int, *, done: int = 0, rate_unit: str | None = None) -> ProgressTask:
        """A new task of ``total`` units, ``done`` of them already (a resumed run); ``rate_unit`` adds ``unit/s``
        to its plain lines."""
        task = ProgressTask(self, name, total, done, rate_unit)
        with self._lock:
            self._tasks.append(task)
            if self.mode == "rich" and not self._closed and total > 0:
                self._start_rich()
                task._rich_id = self._rich.add_task(name, total=total, completed=done, stats="")
        return task

    def close(self, *, final: bool = True) -> None:
        """Stop drawing; with ``final``, write the last line of every task whose latest state was not written."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.mode == "plain" and final:
                now = self.clock()
                for task in self._tasks:
                    if task._unprinted():
                        self._write(task.line(now, closing=True))
                        task._mark_printed(now)
            if self._rich is not None:
                self._rich.stop()

    def _updated(self, task: ProgressTask) -> None:
        with self._lock:
            if self._closed:
                return
            if task._rich_id is not None:
                self._rich.update(task._rich_id, completed=task.done, stats=format_stats(task.stats))
            elif self.mode == "plain":
                now = self.clock()
                if task._plain_due(now, self.every_s):
                    self._write(task.line(now))
                    task._mark_printed(now)

    def _write(self, line: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()


class StepProgress:
    """Named steps run in order (``prepare``'s load, de-duplicate, ...) as one task of a display."""

    def __init__(self, display: ProgressDisplay, steps: Sequence[str], name: str = "step") -> None:
        self._display, self._steps, self._name = display, list(steps), name
        self._task: ProgressTask | None = None

    def start(self, step: str) -> None:
        """``step`` begins: the steps before it are done."""
        if self._task is None:  # created with the first step, so work skipped entirely shows no bar
            self._task = self._display.task(self._name, len(self._steps))
        self._task.update(self._steps.index(step), {"now": step})

    def finish(self) -> None:
        """Every step is done."""
        if self._task is not None:
            self._task.update(len(self._steps), {"now": "done"})


__all__ = ["ProgressDisplay", "ProgressTask", "StepProgress", "format_duration", "format_stats", "progress_every_s"]
