"""Action chunks in, robot state out: the control tick shared by the arm node and the robot bridge.

``submit(chunk)`` makes a received ``ActionChunk`` the current plan (a newer
one replaces the rest of the older: ``sims.chunks.ChunkQueue``); ``step()``,
once per control tick, sends the plan's next action (if any), runs the
watchdog (hold after ``deadline_ms``, and on a ``BusArm`` torque off after
``release_after_ms``), reads the robot and returns a ``RobotState``. A
malformed chunk or action is counted, logged and dropped, and the robot holds;
a chunk for another robot (``ActionChunk.robot`` is not ``name``) is refused,
counted and logged once per sender and name; a robot failure (``RobotError``:
the bus) propagates. ``executed_chunks`` counts chunks of which at least one
step reached the robot, each once.
"""

from __future__ import annotations

import logging

import numpy as np

from agentrt.errors import ActionError
from agentrt.messages import ActionChunk, Message, RobotState, now_ns
from sims.chunks import AddressCheck, ChunkQueue, QueuedChunk, chunk_sender
from sims.robot import Robot

__all__ = ["Actuator"]

log = logging.getLogger(__name__)


class Actuator:
    """Executes chunks on ``robot`` one step per ``step()`` and reports its state as ``name``."""

    def __init__(self, robot: Robot, name: str) -> None:
        self.robot = robot
        self.name = name
        self.queue = ChunkQueue()
        self.address = AddressCheck(name, name)
        self.seq = 0
        self.bad_chunks = 0  # not an ActionChunk, or malformed: dropped
        self.bad_actions = 0  # refused by the robot (ActionError)
        self.executed_chunks = 0  # chunks with at least one step sent to the robot
        self._last_executed: QueuedChunk | None = None
        self._warned_dt = False

    @property
    def refused_chunks(self) -> int:
        """Chunks addressed to another robot."""
        return self.address.refused

    def counters(self) -> dict[str, int]:
        """The counts as telemetry counters (``agentrt.node``: ``bad.*`` ones add to the run's bad total)."""
        return {
            "executed_chunks": self.executed_chunks,
            "bad.other_robot_chunks": self.refused_chunks,
            "bad.malformed_chunks": self.bad_chunks,
            "bad.rejected_actions": self.bad_actions,
        }

    def submit(self, message: Message) -> bool:
        """Take a chunk; False (and the robot holds) for anything that is not a well-formed ActionChunk."""
        if not isinstance(message, ActionChunk):
            self.bad_chunks += 1
            log.warning("%s: expected an ActionChunk, got %s; dropped", self.name, type(message).__name__)
            return False
        if not self.address.accepts(message.robot, chunk_sender(message.hops)):
            return False
        try:
            self.queue.submit(message.action_kind, np.asarray(message.actions),
                              frame_seq=message.frame_seq, t_capture_ns=message.t_capture_ns)
        except ActionError as exc:
            self.bad_chunks += 1
            self.robot.stats.rejected += 1
            self.robot.hold()
            log.warning("%s: rejected an action chunk: %s; the robot holds", self.name, exc)
            return False
        period_ms = 1000.0 * self.robot.config.control_dt_s
        if not self._warned_dt and abs(message.dt_ms - period_ms) > 0.05 * period_ms:
            self._warned_dt = True
            log.warning("%s: chunks are planned %.1f ms apart, but the robot steps every %.1f ms (control_hz); "
                        "they play at the robot's rate", self.name, message.dt_ms, period_ms)
        return True

    def step(self) -> RobotState:
        """One control tick: next action, watchdog, observation."""
        action = self.queue.next()
        if action is not None:
            chunk = self.queue.last
            try:
                self.robot.send_action(action)
            except ActionError as exc:
                self.bad_actions += 1
                self.queue.clear()
                log.warning("%s: %s", self.name, exc)
            else:
                if chunk is not None and chunk is not self._last_executed:
                    self._last_executed = chunk
                    self.executed_chunks += 1
        self.robot.enforce_watchdog()
        obs = self.robot.get_observation()
        state = RobotState(self.name, self.seq, now_ns(), obs.joint_positions, obs.joint_velocities,
                           obs.ee_pose, float(obs.gripper))
        self.seq += 1
        return state
