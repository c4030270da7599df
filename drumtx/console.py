"""Console output: rich on a terminal, plain whole lines when piped or logged.

Every rich Console drumtx prints through comes from :func:`make_console`. Off a
terminal rich assumes 80 columns and would break a long line (a path, a size) in two;
soft wrapping keeps one message per line, so logs stay greppable.
"""

from __future__ import annotations

import math
import time
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress


def make_console(*, stderr: bool = False) -> Console:
    """A Console that never wraps or cuts a printed line; no guessed highlighting."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


class Progress:
    """Progress over ``total`` items: a rich bar on a terminal, else plain lines.

    Off a terminal a line ``label: done/total unit, rate, ETA`` is printed every
    ``log_every_sec`` and at the end; ``log_every_sec=None`` prints nothing there.
    ``enabled=False`` shows nothing anywhere.
    """

    def __init__(
        self,
        console: Console,
        label: str,
        total: int,
        *,
        done: int = 0,
        unit: str = "items",
        log_every_sec: float | None = 5.0,
        transient: bool = False,
        enabled: bool = True,
    ) -> None:
        self.console, self.label, self.total, self.unit = console, label, total, unit
        self.done, self.start_done, self.info = done, done, ""
        self.log_every_sec = log_every_sec if enabled else None
        self.t0 = self.t_log = time.monotonic()
        self.bar: RichProgress | None = None
        if enabled and console.is_terminal:
            self.bar = _rich_bar(console, label, transient)
            self.task = self.bar.add_task(
                label, total=total, completed=done, rate="", info=""
            )
            self.bar.start()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def advance(self, n: int = 1, info: str | None = None) -> None:
        self.update(self.done + n, info)

    def update(self, done: int, info: str | None = None) -> None:
        """Move to ``done`` items; ``info`` (if given) replaces the text after it."""
        self.done = done
        self.info = self.info if info is None else info
        now = time.monotonic()
        rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
        rate_text = f"{rate:.1f} {self.unit}/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rate=rate_text, info=self.info)
        if self._log_due(now):
            self.t_log = now
            eta = (self.total - self.done) / rate if rate > 0 else math.inf
            line = f"{self.label}: {self.done}/{self.total} {self.unit}, {rate_text}"
            line += f", ETA {eta:.0f} s" + (f"  {self.info}" if self.info else "")
            self.console.print(line, markup=False)

    def note(self, message: str) -> None:
        """A line above the bar (or a plain line), e.g. a validation result."""
        self.console.print(message, markup=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def _log_due(self, now: float) -> bool:
        if self.log_every_sec is None or self.console.is_terminal:
            return False
        return now - self.t_log > self.log_every_sec or self.done == self.total


def _rich_bar(console: Console, label: str, transient: bool) -> RichProgress:
    """The terminal's bar; rich.progress is imported only here (50 ms off start-up
    when the output is piped)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    return RichProgress(
        TextColumn(f"[bold]{escape(label)}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
    )
