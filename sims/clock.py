"""The two sim clocks.

- ``LockstepClock``: the simulation waits for each action; no sleeping, no
  wall time in the loop, so an episode is deterministic for a seed and as fast
  as the machine allows.
- ``RealTimeClock``: control ticks are paced to the wall clock
  (``time.monotonic``); physics for a tick runs at the tick, actions take effect
  at the first tick after they arrive, and the current chunk keeps executing
  meanwhile. A slow policy therefore costs what it would cost a real robot.

``wait_next_tick`` records how late each tick started (``lateness_ms``); the
sim benchmark reports its p99 as loop jitter.
"""

from __future__ import annotations

import time
from typing import Protocol

from agentrt.errors import ConfigError
from agentrt.scheduler import CLOCKS  # one list: the planners' schedule and the sim's clock name the same two

__all__ = ["Clock", "LockstepClock", "RealTimeClock", "make_clock", "CLOCKS"]


class Clock(Protocol):
    lockstep: bool
    lateness_ms: list[float]

    def start(self) -> None: ...

    def wait_next_tick(self) -> None: ...


class LockstepClock:
    """Ticks as soon as the loop asks: the sim waits for actions, never for the wall clock."""

    lockstep = True

    def __init__(self) -> None:
        self.lateness_ms: list[float] = []

    def start(self) -> None:
        pass

    def wait_next_tick(self) -> None:
        pass


class RealTimeClock:
    """Ticks every ``1 / control_hz`` seconds of wall time; a tick more than a period late is skipped, not bunched."""

    lockstep = False

    def __init__(self, control_hz: float, *, keep_samples: int = 100_000) -> None:
        if not control_hz > 0:
            raise ConfigError(f"RealTimeClock.control_hz: expected > 0, got {control_hz}")
        self.period_s = 1.0 / control_hz
        self.lateness_ms: list[float] = []
        self.overruns = 0  # ticks dropped because the loop fell a whole period behind
        self._keep = keep_samples
        self._next = 0.0

    def start(self) -> None:
        self._next = time.monotonic()

    def wait_next_tick(self) -> None:
        self._next += self.period_s
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
            now = time.monotonic()
        late = now - self._next
        if late > self.period_s:
            # Behind by more than a tick: start afresh from now instead of running ticks back to back.
            skipped = int(late // self.period_s)
            self.overruns += skipped
            self._next += skipped * self.period_s
        if len(self.lateness_ms) < self._keep:
            self.lateness_ms.append(max(late, 0.0) * 1e3)


def make_clock(name: str, control_hz: float) -> Clock:
    if name == "lockstep":
        return LockstepClock()
    if name in ("realtime", "real-time", "real_time"):
        return RealTimeClock(control_hz)
    raise ConfigError(f"unknown clock '{name}': expected one of {', '.join(CLOCKS)}")
