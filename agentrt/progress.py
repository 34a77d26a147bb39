"""One progress line for long CLI work: done / total, elapsed, and an estimate of the time left.

On a terminal the line is redrawn in place about once a second; otherwise (a log,
a pipe, CI) a full line goes out every ``plain_every_s`` seconds, so a long job is
never silent anywhere.

    progress = ProgressLine("eval", total=len(rows), unit="rows")
    for i, row in enumerate(rows):
        ...
        progress.update(i + 1, note=f"{row.task} {row.decoding}")
    progress.done("eval: 12 rows")
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressLine", "duration"]


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class ProgressLine:
    """``update(done)`` as work goes; the first call, a finished total and ``done()`` always show."""

    def __init__(self, label: str, *, total: int | None = None, unit: str = "", stream: TextIO | None = None,
                 tty_every_s: float = 1.0, plain_every_s: float = 10.0) -> None:
        self.label = label
        self.total = total if total else None
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = tty_every_s if self.tty else plain_every_s
        self.started = time.monotonic()
        self._next = 0.0  # show the first update at once
        self._drawn = False

    def text(self, done: int, note: str = "") -> str:
        elapsed = time.monotonic() - self.started
        unit = f" {self.unit}" if self.unit else ""
        parts = [f"{self.label}: {done}/{self.total}{unit}" if self.total else f"{self.label}: {done}{unit}"]
        if note:
            parts.append(note)
        parts.append(f"{duration(elapsed)} so far")
        if self.total and 0 < done < self.total and elapsed >= 2.0:  # sooner, the rate means little
            parts.append(f"about {duration(elapsed / done * (self.total - done))} left")
        return ", ".join(parts)

    def update(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if now < self._next and not (self.total and done >= self.total):
            return
        self._next = now + self.every_s
        line = self.text(done, note)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self, text: str = "") -> None:
        """End the line (on a terminal) and print ``text``, if any, on its own line."""
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self._drawn = False
        if text:
            self.stream.write(text + "\n")
        self.stream.flush()
