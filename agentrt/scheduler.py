"""ChunkSchedule: when a planner plans an action chunk, and which of its steps the robot runs.

One schedule for every planner (the policy node, ``agentrt eval``'s in-process
source, and so ``agentrt demo``), so lockstep and real time mean the same
everywhere. An ``ActionChunk`` is ``steps x dims``, one step per control tick.

- **lockstep** (deterministic evaluation): the robot waits for the plan. A plan
  is due when the chunk in flight is used up; the robot runs the first
  ``execute_steps`` steps of it (0 = all), so the next plan comes as often as in
  real time (4 of 8 also lands grasps better than whole chunks).
- **realtime** (wall-paced): a plan is due when the chunk in flight has at most
  ``lead_steps`` steps left, so the next one lands before the robot runs out;
  the steps that went by while it was computed (capture -> now at the control
  rate, at most half the chunk) are dropped.

``PlanGate`` is the same schedule for a planner that cannot see the robot's
queue (the policy node, across the wire): it answers each lockstep frame once,
and in real time plans again when the chunk it sent last should be down to
``lead_steps``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from agentrt.errors import ConfigError

__all__ = ["CLOCKS", "ChunkSchedule", "PlanGate"]

CLOCKS = ("lockstep", "realtime")


@dataclass(frozen=True)
class ChunkSchedule:
    clock: str = "lockstep"  # lockstep | realtime
    control_hz: float = 20.0  # the robot's control rate: one chunk step per tick
    lead_steps: int = 4  # real time: plan when the chunk in flight has this many steps left
    execute_steps: int = 4  # lockstep: run this many steps of each chunk, then plan again (0 = all)

    def __post_init__(self) -> None:  # messages name the fields: the planners' params of the same names
        if self.clock not in CLOCKS:
            raise ConfigError(f"clock: expected one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if self.control_hz <= 0 or self.lead_steps < 0 or self.execute_steps < 0:
            raise ConfigError(f"expected control_hz > 0, lead_steps >= 0, execute_steps >= 0, "
                              f"got {self.control_hz}, {self.lead_steps}, {self.execute_steps}")

    @property
    def lockstep(self) -> bool:
        return self.clock == "lockstep"

    def due(self, steps_left: int) -> bool:
        """Plan now, with ``steps_left`` steps of the chunk in flight still to run?"""
        return steps_left == 0 if self.lockstep else steps_left <= self.lead_steps

    def steps_to_run(self, chunk: np.ndarray, *, t_capture_ns: int, now_ns: int | None = None) -> np.ndarray:
        """The part of a chunk planned from a frame captured at ``t_capture_ns`` that the robot should run."""
        if self.lockstep:
            return chunk[: self.execute_steps or chunk.shape[0]]
        now = time.monotonic_ns() if now_ns is None else now_ns
        late = int((now - t_capture_ns) / 1e9 * self.control_hz)
        return chunk[min(late, chunk.shape[0] // 2) :]

    def lead_s(self, steps: int) -> float:
        """Real time: seconds from sending ``steps`` steps until ``lead_steps`` are left (at least one tick)."""
        return max(steps - self.lead_steps, 1) / self.control_hz


class PlanGate:
    """The schedule for a planner answering frames: ``due(frame)`` before planning, ``sent(...)`` after."""

    def __init__(self, schedule: ChunkSchedule) -> None:
        self.schedule = schedule
        self._answered = -1  # lockstep: the last frame seq answered (a lockstep sim republishes until answered)
        self._next_s = 0.0  # real time: monotonic time when the chunk in flight is down to lead_steps

    def due(self, frame_seq: int, now_s: float | None = None) -> bool:
        if self.schedule.lockstep:
            return frame_seq > self._answered
        return (time.monotonic() if now_s is None else now_s) >= self._next_s

    def sent(self, frame_seq: int, steps: int, now_s: float | None = None) -> None:
        """A chunk of ``steps`` steps answering frame ``frame_seq`` went out."""
        self._answered = frame_seq
        if not self.schedule.lockstep:
            self._next_s = (time.monotonic() if now_s is None else now_s) + self.schedule.lead_s(steps)

    def new_episode(self) -> None:
        """The robot starts afresh: nothing is in flight (real time plans from the next frame)."""
        self._next_s = 0.0
