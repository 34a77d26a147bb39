"""The one chunk executor: ActionChunk -> queue -> robot, for simulated and real robots alike.

``ChunkQueue`` holds the chunk being executed, one step per control tick. A
chunk is ``(steps, dims)`` float32 of one action kind. A newly arrived chunk
replaces the rest of the current one (the newest plan wins, computed from the
newest frame), and execution continues with it at the next tick; until then the
current chunk keeps executing, so the robot never idles while the next chunk is
computed. Thread-safe: a receiver thread may ``submit`` while the loop calls
``next``.

``ChunkExecutor`` takes messages off an actions input and decides, in this
order, what happens to each (the sim node, the arm node and the robot bridge
all use it, so the rules cannot drift; docs/sims.md has the table):

1. not an ActionChunk: dropped, counted (``not_chunks``), logged at the first and every 100th;
2. ``robot`` is not this robot: refused, counted, logged once per sender and name (``AddressCheck``);
3. ``frame_seq`` -1 (computed from no frame, protocol section 3): executed, counted, logged once;
4. ``frame_seq`` below the stale floor (a frame of an earlier episode; lockstep: older than
   the frame waited for): dropped, counted;
5. malformed (kind, shape): rejected, counted, the robot holds;
6. a ``dt_ms`` other than the robot's period: executed at the robot's rate, warned once;
7. accepted: its capture-to-arrival latency is sampled (framed chunks with a capture time).

The caller then steps: ``next_action()`` gives the plan's next action (or None),
and ``sent()`` / ``failed(exc)`` say what the robot did with it. The executor
touches the robot only through ``hold()`` and ``stats.rejected`` (``ExecutedRobot``),
so this module imports nothing from ``sims``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agentrt.errors import ActionError
from agentrt.messages import ActionChunk
from agentrt.wire import ACTION_KINDS

__all__ = ["Action", "AddressCheck", "ChunkExecutor", "ChunkQueue", "ExecutedRobot", "QueuedChunk", "chunk_sender"]

log = logging.getLogger(__name__)


@dataclass
class Action:
    """One control step's command; ``sims.robot``'s docstring has the kinds and units."""

    kind: str
    values: np.ndarray

    @classmethod
    def ee_delta(cls, dxyz: np.ndarray | list[float], gripper: float, drpy: np.ndarray | list[float] | None = None) -> Action:
        parts = [np.asarray(dxyz, dtype=np.float64)]
        if drpy is not None:
            parts.append(np.asarray(drpy, dtype=np.float64))
        parts.append(np.array([gripper], dtype=np.float64))
        return cls("ee_delta", np.concatenate(parts))

    @classmethod
    def joint_target(cls, positions: np.ndarray | list[float], gripper: float | None = None) -> Action:
        values = np.asarray(positions, dtype=np.float64)
        if gripper is not None:
            values = np.append(values, gripper)
        return cls("joint_target", values)


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


class _Stats(Protocol):
    rejected: int


class ExecutedRobot(Protocol):
    """What the executor needs of a robot (``sims.robot.Robot`` has it): hold still, count a rejection."""

    @property
    def stats(self) -> _Stats: ...

    def hold(self) -> None: ...


class ChunkExecutor:
    """Takes ActionChunks for ``robot`` (its name on the wire) and plays them on ``target`` one step per tick.

    ``period_ms``: the robot's control period, to warn once about chunks planned at another rate (None: no check).
    ``drop_on_failure``: when the robot refuses a step, drop the rest of its chunk (a real robot: every step
    of a chunk has the kind and width the robot just refused) or keep stepping it (the sim: a lockstep plan
    plays out whole before the next frame, each refused step counted by the robot).
    """

    LATENCY_SAMPLES = 10_000  # capture-to-arrival samples kept (an episode's; a bridge runs for hours)

    def __init__(self, robot: str, target: ExecutedRobot, *, receiver: str, period_ms: float | None = None,
                 drop_on_failure: bool = True) -> None:
        self.target = target
        self.receiver = receiver  # for log lines: "sim node", the arm's name
        self.period_ms = period_ms
        self.drop_on_failure = drop_on_failure
        self.queue = ChunkQueue()
        self.address = AddressCheck(robot, receiver)
        self.stale_floor = 0  # chunks from frames before this seq belong to an earlier episode
        self.latencies_ms: deque[float] = deque(maxlen=self.LATENCY_SAMPLES)  # capture -> chunk arrival
        self.not_chunks = 0  # messages that are no ActionChunk: dropped
        self.malformed_chunks = 0  # kind or shape wrong: rejected, the robot held
        self.stale_chunks = 0  # computed from a frame of an earlier episode (or, lockstep, an older frame)
        self.unframed_chunks = 0  # frame_seq -1: taken, not tied to a frame
        self.failed_actions = 0  # steps the robot refused (ActionError from its send_action)
        self.executed_chunks = 0  # chunks with at least one step sent to the robot, each once
        self._last_executed: QueuedChunk | None = None
        self._warned_dt = False

    def new_episode(self, first_frame_seq: int) -> None:
        """Chunks computed from frames before ``first_frame_seq`` are stale from now on."""
        self.stale_floor = first_frame_seq
        self.latencies_ms.clear()

    def take(self, message: object, *, min_frame_seq: int | None = None) -> bool:
        """Make ``message`` the current plan if it is a chunk for this robot, fresh and well formed.

        ``min_frame_seq`` raises the stale floor for this call (lockstep: the frame waited for).
        False when it was not taken; every reason is counted (see the module docstring).
        """
        if not isinstance(message, ActionChunk):
            self.not_chunks += 1
            if self.not_chunks == 1 or self.not_chunks % 100 == 0:
                log.warning("%s: expected an ActionChunk on its actions input, got %s; dropped (%d so far)",
                            self.receiver, type(message).__name__, self.not_chunks)
            return False
        if not self.address.accepts(message.robot, chunk_sender(message.hops)):
            return False
        floor = self.stale_floor if min_frame_seq is None else max(min_frame_seq, self.stale_floor)
        if message.frame_seq == -1:
            self.unframed_chunks += 1
            if self.unframed_chunks == 1:
                log.info("%s: executing chunks with frame_seq -1 (computed from no frame) as they come; "
                         "their capture-to-actuation latency is not measured", self.receiver)
        elif message.frame_seq < floor:
            log.debug("%s: dropped a stale chunk (frame %d < %d)", self.receiver, message.frame_seq, floor)
            self.stale_chunks += 1
            return False
        try:
            self.queue.submit(message.action_kind, np.asarray(message.actions),
                              frame_seq=message.frame_seq, t_capture_ns=message.t_capture_ns)
        except ActionError as exc:
            self.malformed_chunks += 1
            self.target.stats.rejected += 1
            self.target.hold()
            log.warning("%s: rejected an action chunk: %s; the robot holds", self.receiver, exc)
            return False
        period_ms = self.period_ms
        if period_ms is not None and not self._warned_dt and abs(message.dt_ms - period_ms) > 0.05 * period_ms:
            self._warned_dt = True
            log.warning("%s: chunks are planned %.1f ms apart, but the robot steps every %.1f ms (control_hz); "
                        "they play at the robot's rate", self.receiver, message.dt_ms, period_ms)
        if message.t_capture_ns > 0 and message.frame_seq >= 0:
            self.latencies_ms.append((time.monotonic_ns() - message.t_capture_ns) / 1e6)
        return True

    def next_action(self) -> Action | None:
        """The plan's next step, or None when it ran out (the robot's watchdog decides when it holds)."""
        return self.queue.next()

    def sent(self) -> None:
        """The robot took the step ``next_action`` gave: its chunk counts as executed (once)."""
        chunk = self.queue.last
        if chunk is not None and chunk is not self._last_executed:
            self._last_executed = chunk
            self.executed_chunks += 1

    def failed(self, exc: ActionError) -> None:
        """The robot refused the step ``next_action`` gave (it holds; its ``send_action`` counted it)."""
        self.failed_actions += 1
        log.warning("%s: action rejected: %s", self.receiver, exc)
        if self.drop_on_failure:
            self.queue.clear()

    def counters(self) -> dict[str, int]:
        """The actions input's counts by their telemetry names (``agentrt.node``: ``bad.*`` and ``dropped.*``
        add to the run's bad and dropped totals), as the sim node reports them (docs/sims.md). The arm node
        and the bridge report theirs under their older names (``sims.real.actuator.Actuator.counters``)."""
        return {
            "bad.other_robot_chunks": self.address.refused,
            "bad.not_chunks": self.not_chunks,
            "bad.rejected_actions": self.target.stats.rejected,  # malformed chunks and refused steps
            "dropped.stale_chunks": self.stale_chunks,
            "unframed_chunks": self.unframed_chunks,
        }
