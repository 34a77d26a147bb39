"""`SourceStats`: what a source counts, for status lines, telemetry and tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SourceStats"]


@dataclass
class SourceStats:
    captured: int = 0  # frames captured
    delivered: int = 0  # frames returned by the read modes
    replaced: int = 0  # captured, then overwritten before anyone read them
    skipped: int = 0  # passed over by the source itself (late frames, missing camera frames)
    gaps: int = 0  # seq numbers the reader never saw
    reconnects: int = 0  # reconnect attempts
    stalls: int = 0  # reads that gave up because the source produced nothing for timeout_ms
    fps: float = 0.0  # measured capture rate (smoothed)
    last_error: str = ""

    @property
    def dropped(self) -> int:
        """Frames lost between the source and the reader: replaced + skipped."""
        return self.replaced + self.skipped

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "dropped": self.dropped}
