"""check_robot: a conformance checker for any ``Robot`` (sim or real driver).

Run it on a new driver before trusting it. It moves the robot at most one
clipped control step (a few cm), so clear the workspace on real hardware.
"""

from __future__ import annotations

import math

import numpy as np

from agentrt.errors import ActionError, RobotError
from sims.robot import Action, Robot, RobotObservation

__all__ = ["check_robot"]


def check_robot(robot: Robot) -> None:
    """Raise RobotError naming the first broken part of the ``Robot`` contract; return None if it conforms."""
    was_connected = robot.is_connected
    if not was_connected:
        robot.connect()
    try:
        _expect(robot.is_connected, "is_connected is False right after connect()")
        n = robot.n_joints
        _expect(isinstance(n, int) and n > 0, f"n_joints: expected a positive int, got {n!r}")
        obs = robot.get_observation()
        _check_observation(obs, n)

        sent = robot.send_action(Action.ee_delta([0.0, 0.0, 0.0], 0.0))
        _expect(isinstance(sent, Action) and sent.kind == "ee_delta", "send_action must return the Action actually sent")
        _expect(sent.values.shape == (4,), f"a 4-value ee_delta came back with shape {sent.values.shape}")
        _expect(not robot.holding, "the robot still reports holding after a valid action")

        before = robot.stats.clipped
        huge = robot.send_action(Action.ee_delta([10.0, 0.0, 0.0], 2.0))
        _expect(robot.stats.clipped == before + 1, "an out-of-limit action was not counted in stats.clipped")
        step = robot.config.max_ee_speed_m_s / robot.config.control_hz
        _expect(
            abs(huge.values[0]) <= step + 1e-9 and 0.0 <= huge.values[-1] <= 1.0,
            f"an out-of-limit ee_delta came back unclipped: {huge.values.tolist()} (max step {step} m, gripper 0..1)",
        )

        current = robot.get_observation().joint_positions
        robot.send_action(Action.joint_target(current))

        bad = [
            Action("ee_delta", np.array([np.nan, 0.0, 0.0, 0.0])),
            Action("ee_delta", np.zeros(5)),
            Action("fly", np.zeros(4)),
            Action("joint_target", np.zeros(n + 2)),
        ]
        for action in bad:
            rejected = robot.stats.rejected
            try:
                robot.send_action(action)
            except ActionError as exc:
                _expect(str(exc) != "", "ActionError without a message")
            else:
                raise RobotError(f"check_robot: a bad action was accepted: kind={action.kind!r} values={action.values.tolist()}")
            _expect(robot.stats.rejected == rejected + 1, "a rejected action was not counted in stats.rejected")
            _expect(robot.holding, f"the robot does not hold after rejecting kind={action.kind!r}")
        _check_observation(robot.get_observation(), n)
    finally:
        if not was_connected:
            robot.disconnect()
    _expect(was_connected or not robot.is_connected, "is_connected is still True after disconnect()")


def _check_observation(obs: RobotObservation, n: int) -> None:
    _expect(isinstance(obs, RobotObservation), f"get_observation: expected RobotObservation, got {type(obs).__name__}")
    for name in ("joint_positions", "joint_velocities"):
        value = np.asarray(getattr(obs, name))
        _expect(value.shape == (n,), f"observation.{name}: expected shape ({n},), got {value.shape}")
        _expect(bool(np.all(np.isfinite(value))), f"observation.{name} is not finite")
    pose = np.asarray(obs.ee_pose)
    _expect(pose.shape == (7,), f"observation.ee_pose: expected shape (7,), got {pose.shape}")
    _expect(math.isclose(float(np.linalg.norm(pose[3:])), 1.0, abs_tol=1e-3), "observation.ee_pose quaternion is not unit")
    _expect(0.0 <= obs.gripper <= 1.0, f"observation.gripper: expected 0..1, got {obs.gripper}")
    _expect(isinstance(obs.t_ns, int), f"observation.t_ns: expected int nanoseconds, got {type(obs.t_ns).__name__}")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise RobotError(f"check_robot: {message}")
