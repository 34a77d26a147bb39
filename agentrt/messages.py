"""The message kinds of wire protocol v1, as Python dataclasses.

These are what nodes hand to a Publisher and get from a Subscriber. The byte
layout lives in `agentrt.wire` and is specified in docs/protocol.md; nothing
here touches bytes. Arrays received from the wire are read-only numpy views of
the message buffer (zero-copy): copy them before writing.

A Frame received through a shared-memory ring (``Frame.shm`` set) is a view of
a ring slot that the publisher writes again a few frames later. Honour it one
of two ways: ``frame.detached()`` (a copy, checked after copying) before
keeping the frame or reading it slowly, or read the pixels and then check
``frame.intact()``; `agentrt.pixels.to_rgb` does the second for every model
and viewer. A torn read raises `agentrt.errors.FrameTornError`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from agentrt.errors import FrameTornError

__all__ = [
    "Kind",
    "Frame",
    "FrameRef",
    "ShmRef",
    "RobotState",
    "ActionChunk",
    "Query",
    "Answer",
    "Telemetry",
    "Heartbeat",
    "Message",
    "Hop",
    "now_ns",
]

# (node or stage name, CLOCK_MONOTONIC ns): where a frame or action has been, for latency traces.
Hop = tuple[str, int]


def now_ns() -> int:
    """CLOCK_MONOTONIC in ns: shared by every process on one host, never jumps."""
    return time.monotonic_ns()


class Kind(enum.IntEnum):
    """The kind byte of the message prefix (offset 5)."""

    FRAME = 1
    ROBOT_STATE = 2
    ACTION_CHUNK = 3
    QUERY = 4
    ANSWER = 5
    TELEMETRY = 6
    HEARTBEAT = 7


@dataclass(frozen=True)
class ShmRef:
    """Where a frame's pixels lie in a shared-memory ring: segment name, slot, and its generation."""

    name: str
    slot: int
    generation: int


@dataclass
class Frame:
    """One image of a stream. ``image`` is H x W x C (C = 1, 3 or 4), uint8, uint16 or float32."""

    stream: str
    seq: int
    t_capture_ns: int
    image: np.ndarray
    pixel_format: str = ""  # "" = by channels: gray, rgb, rgba; also "bgr", "bgra", "depth"
    hops: list[Hop] = field(default_factory=list)
    # Set on frames received through a shared-memory ring: ``image`` is then a view
    # of the ring slot, valid while ``intact()`` is true.
    shm: ShmRef | None = field(default=None, repr=False, compare=False)
    # Set by the Subscriber that mapped the slot: whether the slot still holds this frame.
    # Local to the receiving process: never on the wire (metadata "local").
    slot_intact: Callable[[], bool] | None = field(default=None, repr=False, compare=False, kw_only=True,
                                                   metadata={"local": True})

    kind = Kind.FRAME

    def __post_init__(self) -> None:
        if not self.pixel_format:
            channels = self.image.shape[2] if self.image.ndim == 3 else 1
            self.pixel_format = {1: "gray", 3: "rgb", 4: "rgba"}.get(channels, "gray")

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def channels(self) -> int:
        return int(self.image.shape[2]) if self.image.ndim == 3 else 1

    def intact(self) -> bool:
        """Whether ``image`` still holds this frame's pixels: always for a frame that owns them; for a view of a
        shared-memory slot, until the publisher writes the slot again (unknown = no). Read first, then check."""
        if self.shm is None:
            return True
        return self.slot_intact is not None and self.slot_intact()

    def detached(self) -> Frame:
        """This frame with pixels of its own, to keep or to read slowly: a shared-memory view is copied and checked
        after the copy (FrameTornError when the slot was overwritten first); any other frame is returned as it is."""
        if self.shm is None:
            return self
        image = np.array(self.image)
        if not self.intact():
            raise FrameTornError(self.stream, self.seq)
        return Frame(self.stream, self.seq, self.t_capture_ns, image, self.pixel_format, self.hops)


@dataclass
class FrameRef:
    """A decoded Frame header whose pixels are in shared memory; a Subscriber resolves it to a Frame."""

    stream: str
    seq: int
    t_capture_ns: int
    width: int
    height: int
    channels: int
    dtype: str
    pixel_format: str
    shm: ShmRef
    hops: list[Hop] = field(default_factory=list)

    kind = Kind.FRAME


@dataclass
class RobotState:
    """What the robot reports: joints, end-effector pose (xyz + quaternion xyzw, metres), gripper 0..1."""

    robot: str
    seq: int
    t_ns: int
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    ee_pose: np.ndarray
    gripper: float
    frame_seq: int = -1  # the frame rendered with this state, -1 if none
    instruction: str = ""  # the task the robot is on, in words ("" = none given): what a VLA policy is told
    episode: int = -1  # counts up when a new task or scene starts, so a policy resets its memory; -1 = unknown

    kind = Kind.ROBOT_STATE


@dataclass
class ActionChunk:
    """``actions`` (steps x dims, float32) to execute ``dt_ms`` apart.

    Echoes the seq and capture time of the frame it was computed from, so the
    robot measures capture-to-actuation latency on its own clock.
    """

    robot: str
    seq: int
    frame_seq: int
    t_capture_ns: int
    action_kind: str  # "ee_delta" | "joint_target"
    actions: np.ndarray
    dt_ms: float
    t_sent_ns: int = 0
    hops: list[Hop] = field(default_factory=list)

    kind = Kind.ACTION_CHUNK

    @property
    def steps(self) -> int:
        return int(self.actions.shape[0])

    @property
    def dims(self) -> int:
        return int(self.actions.shape[1])


@dataclass
class Query:
    """A question about a stream; answers come back as Answer messages with ``query_id == id``."""

    id: str
    seq: int
    t_ns: int
    text: str
    stream: str = ""  # "" = the answering node's default stream

    kind = Kind.QUERY


@dataclass
class Answer:
    """One streamed piece of an answer: ``text`` is the new text (a delta), ``done`` marks the last one."""

    query_id: str
    seq: int  # 0, 1, 2, ... within one answer
    t_ns: int
    text: str
    done: bool = False
    error: str = ""  # non-empty: the query failed; the text says why

    kind = Kind.ANSWER


@dataclass
class Telemetry:
    """Named measurements from a node (rates, latencies in ms, counters)."""

    node: str
    seq: int
    t_ns: int
    metrics: dict[str, float] = field(default_factory=dict)

    kind = Kind.TELEMETRY


@dataclass
class Heartbeat:
    """Liveness and readiness of a node."""

    node: str
    seq: int
    t_ns: int
    state: str  # "starting" | "ready" | "running" | "stopping" | "failed"
    pid: int = 0

    kind = Kind.HEARTBEAT


Message = Frame | FrameRef | RobotState | ActionChunk | Query | Answer | Telemetry | Heartbeat
