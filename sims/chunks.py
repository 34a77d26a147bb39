"""ChunkQueue: the action chunk being executed, one step per control tick.

A chunk is ``(steps, dims)`` float32 of one action kind. A newly arrived chunk
replaces the rest of the current one (the newest plan wins, computed from the
newest frame), and execution continues with it at the next tick; until then the
current chunk keeps executing, so the robot never idles while the next chunk is
computed. Thread-safe: a receiver thread may ``submit`` while the loop calls
``next``.

``AddressCheck`` is the other half of taking a chunk: ``ActionChunk.robot``
names the robot the actions are for, and an executor refuses chunks for any
other robot (counted; logged once per sender and name, so a flood of them is
one line).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from agentrt.errors import ActionError
from sims.robot import ACTION_KINDS, Action

__all__ = ["AddressCheck", "ChunkQueue", "QueuedChunk", "chunk_sender"]

log = logging.getLogger(__name__)


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


class AddressCheck:
    """Takes only chunks addressed to ``robot`` (the name this robot puts in its ``RobotState.robot``).

    A chunk for another robot, or with no name, is refused: ``refused`` counts them, and
    the first from each (sender, name) is logged as a warning naming both robots. The
    robot does not hold for it: the chunk was never a command for this robot.
    """

    MAX_LOGGED = 64  # distinct (sender, name) pairs logged; after that, only counted

    def __init__(self, robot: str, receiver: str) -> None:
        self.robot = robot
        self.receiver = receiver  # who refuses, for the log line: "sim node", "robot bridge so100"
        self.refused = 0
        self._logged: set[tuple[str, str]] = set()

    def accepts(self, robot: str, sender: str = "") -> bool:
        if robot == self.robot:
            return True
        self.refused += 1
        key = (sender, robot)
        if key not in self._logged and len(self._logged) < self.MAX_LOGGED:
            self._logged.add(key)
            log.warning(
                "%s: refused action chunks for robot %r%s: this robot is %r; set the policy's robot name to %r "
                "(ActionChunk.robot, as in this robot's RobotState); further ones are counted, not logged",
                self.receiver, robot, f" from {sender}" if sender else "", self.robot, self.robot,
            )
        return False


def chunk_sender(hops: list[tuple[str, int]] | None) -> str:
    """The node that sent a chunk (its last hop), or "" when it carries no trace."""
    return str(hops[-1][0]) if hops else ""

