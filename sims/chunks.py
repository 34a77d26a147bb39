"""ChunkQueue: the action chunk being executed, one step per control tick.

A chunk is ``(steps, dims)`` float32 of one action kind. A newly arrived chunk
replaces the rest of the current one (the newest plan wins, computed from the
newest frame), and execution continues with it at the next tick; until then the
current chunk keeps executing, so the robot never idles while the next chunk is
computed. Thread-safe: a receiver thread may ``submit`` while the loop calls
``next``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from agentrt.errors import ActionError
from sims.robot import ACTION_KINDS, Action

__all__ = ["ChunkQueue", "QueuedChunk", "steps_to_run"]


@dataclass
class QueuedChunk:
    kind: str
    actions: np.ndarray  # (steps, dims) float32
    frame_seq: int = -1  # the frame it was computed from (-1: not from a frame)
    t_capture_ns: int = 0  # that frame's capture time, for capture-to-actuation latency


class ChunkQueue:
    """Holds the current chunk and the index of its next step."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunk: QueuedChunk | None = None
        self._index = 0
        self.received = 0  # chunks accepted
        self.replaced = 0  # chunks cut short by a newer one
        self.last: QueuedChunk | None = None  # the chunk the latest step came from

    def submit(self, kind: str, actions: np.ndarray, *, frame_seq: int = -1, t_capture_ns: int = 0) -> None:
        """Make ``actions`` the current chunk; raises ActionError for a malformed chunk (shape, kind)."""
        if kind not in ACTION_KINDS:
            raise ActionError(f"unknown action kind '{kind}': expected one of {', '.join(ACTION_KINDS)}")
        array = np.asarray(actions)
        if array.ndim != 2 or array.shape[0] < 1:
            raise ActionError(f"action chunk: expected shape (steps >= 1, dims), got {array.shape}")
        chunk = QueuedChunk(kind, array.astype(np.float32, copy=False), frame_seq, t_capture_ns)
        with self._lock:
            if self._chunk is not None and self._index < self._chunk.actions.shape[0]:
                self.replaced += 1
            self._chunk, self._index = chunk, 0
            self.received += 1

    def next(self) -> Action | None:
        """The next step's action, or None when the current chunk is used up."""
        with self._lock:
            if self._chunk is None or self._index >= self._chunk.actions.shape[0]:
                return None
            values = self._chunk.actions[self._index].astype(np.float64)
            self._index += 1
            self.last = self._chunk
            return Action(self._chunk.kind, values)

    @property
    def remaining(self) -> int:
        with self._lock:
            return 0 if self._chunk is None else self._chunk.actions.shape[0] - self._index

    def clear(self) -> None:
        with self._lock:
            self._chunk, self._index, self.last = None, 0, None


def steps_to_run(chunk: np.ndarray, *, lockstep: bool, execute_steps: int, t_capture_ns: int, control_hz: float) -> np.ndarray:
    """The part of a planned chunk the robot should run. Lockstep: the first ``execute_steps`` (0 = all), so
    the next plan comes as often as in real time. Real time: without the steps that went by while the chunk
    was computed (capture -> now at the control rate), at most half of it."""
    if lockstep:
        return chunk[: execute_steps or chunk.shape[0]]
    late = int((time.monotonic_ns() - t_capture_ns) / 1e9 * control_hz)
    return chunk[min(late, chunk.shape[0] // 2) :]
