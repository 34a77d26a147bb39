"""Action chunks in, robot state out: the control tick shared by the arm node and the robot bridge.

``submit(chunk)`` hands a received message to the runtime's chunk executor
(``agentrt.chunks.ChunkExecutor``, the same one the sim node uses): a newer
chunk replaces the rest of the older; a chunk for another robot
(``ActionChunk.robot`` is not ``name``) is refused, counted and logged once per
sender and name; a message that is no ActionChunk, or a malformed chunk, is
counted, logged and dropped, and for a malformed one the robot holds.
``step()``, once per control tick, sends the plan's next action (if any; a
step the robot refuses is counted and drops the rest of its chunk), runs the
watchdog (hold after ``deadline_ms``, and on a ``BusArm`` torque off after
``release_after_ms``), reads the robot and returns a ``RobotState``. A robot
failure (``RobotError``: the bus) propagates. ``executed_chunks`` counts chunks
of which at least one step reached the robot, each once.
"""

from __future__ import annotations

from agentrt.chunks import ChunkExecutor
from agentrt.errors import ActionError
from agentrt.messages import Message, RobotState, now_ns
from sims.robot import Robot

__all__ = ["Actuator"]


class Actuator:
    """Executes chunks on ``robot`` one step per ``step()`` and reports its state as ``name``."""

    def __init__(self, robot: Robot, name: str) -> None:
        self.robot = robot
        self.name = name
        self.executor = ChunkExecutor(name, robot, receiver=name, period_ms=1000.0 * robot.config.control_dt_s)
        self.queue = self.executor.queue
        self.address = self.executor.address
        self.seq = 0

    @property
    def refused_chunks(self) -> int:
        """Chunks addressed to another robot."""
        return self.executor.address.refused

    @property
    def bad_chunks(self) -> int:
        """Not an ActionChunk, or malformed: dropped."""
        return self.executor.not_chunks + self.executor.malformed_chunks

    @property
    def bad_actions(self) -> int:
        """Steps refused by the robot (ActionError)."""
        return self.executor.failed_actions

    @property
    def executed_chunks(self) -> int:
        """Chunks with at least one step sent to the robot."""
        return self.executor.executed_chunks

    def counters(self) -> dict[str, int]:
        """The counts as telemetry counters (``agentrt.node``: ``bad.*`` ones add to the run's bad total).

        The names predate the shared executor (the sim node reports ``ChunkExecutor.counters``); they stay
        for the dashboards and docs that read them."""
        return {
            "executed_chunks": self.executed_chunks,
            "bad.other_robot_chunks": self.refused_chunks,
            "bad.malformed_chunks": self.bad_chunks,
            "bad.rejected_actions": self.bad_actions,
        }

    def submit(self, message: Message) -> bool:
        """Take a chunk; False (and, for a malformed chunk, the robot holds) for anything not taken."""
        return self.executor.take(message)

    def step(self) -> RobotState:
        """One control tick: next action, watchdog, observation."""
        action = self.executor.next_action()
        if action is not None:
            try:
                self.robot.send_action(action)
            except ActionError as exc:
                self.executor.failed(exc)
            else:
                self.executor.sent()
        self.robot.enforce_watchdog()
        obs = self.robot.get_observation()
        state = RobotState(self.name, self.seq, now_ns(), obs.joint_positions, obs.joint_velocities,
                           obs.ee_pose, float(obs.gripper))
        self.seq += 1
        return state
