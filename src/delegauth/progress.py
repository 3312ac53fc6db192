"""A progress bar with rate and ETA for long commands, on a terminal only (rich)."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["ProgressBar"]


class ProgressBar:
    """Call with (phase, done, total, items); draws on ``stream`` only when it is a TTY.

    A new phase starts a new bar. ``total`` and ``done`` are in bytes (so the ETA holds
    for any line length); the rate shown is in items (lines) per second.
    """

    def __init__(self, stream: IO[str] | None = None, unit: str = "lines") -> None:
        self._stream = stream or sys.stderr
        self._unit = unit
        self._bar: Any = None
        self._task: Any = None
        self._phase = ""
        self._started = 0.0
        self.enabled = self._stream.isatty()

    def __call__(self, phase: str, done: int, total: int, items: int) -> None:
        if not self.enabled:
            return
        if phase != self._phase:
            self._start(phase, total)
        rate = items / max(time.monotonic() - self._started, 1e-9)
        self._bar.update(self._task, completed=done, rate=f"{rate:,.0f} {self._unit}/s")

    def _start(self, phase: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.close()
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=self._stream),
        )
        self._bar.start()
        self._task = self._bar.add_task(phase, total=total or 1, rate="")
        self._phase = phase
        self._started = time.monotonic()

    def log(self, message: str) -> None:
        """Print a line above the bar (or plainly, without one)."""
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=self._stream)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self._phase = ""

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
