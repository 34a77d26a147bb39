"""Scripted experts: waypoint followers that emit the policy's own action format.

An expert sees the robot observation (and, through the task, privileged object
positions) and returns one ``ee_delta`` action per control step:
``(dx, dy, dz, gripper)`` float32, metres per step and 0 open .. 1 closed. That
is exactly what a learned policy will emit, so expert episodes are training
demonstrations as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from sims.robot import RobotObservation

__all__ = ["Waypoint", "WaypointExpert", "EXPERT_ACTION_DIMS"]

EXPERT_ACTION_DIMS = 4  # dx, dy, dz, gripper


@dataclass
class Waypoint:
    """Move the end-effector to ``goal`` (xyz, or a function evaluated when this waypoint starts)."""

    goal: np.ndarray | Callable[[], np.ndarray]
    gripper: float  # 0 open .. 1 closed, held while moving
    tolerance_m: float = 0.01
    hold_steps: int = 0  # extra steps to stay once there (let a gripper close or an object settle)
    max_step_m: float = 0.02  # speed: metres per control step (0.4 m/s at 20 Hz)
    timeout_steps: int = 60  # give up on an unreachable goal and go on (a blocked push, say)


class WaypointExpert:
    """Follows waypoints in order with a straight-line, speed-capped step; then holds still."""

    def __init__(self, waypoints: list[Waypoint]) -> None:
        self.waypoints = waypoints
        self.index = 0
        self._goal: np.ndarray | None = None
        self._held = 0
        self._steps_here = 0

    @property
    def done(self) -> bool:
        return self.index >= len(self.waypoints)

    def act(self, obs: RobotObservation) -> np.ndarray:
        """The next action: (dx, dy, dz, gripper) float32."""
        ee = obs.ee_pose[:3]
        while not self.done:
            wp = self.waypoints[self.index]
            if self._goal is None:
                goal = wp.goal() if callable(wp.goal) else wp.goal
                self._goal = np.asarray(goal, dtype=np.float64)
                self._held = 0
                self._steps_here = 0
            error = self._goal - ee
            arrived = float(np.linalg.norm(error)) <= wp.tolerance_m
            if (arrived and self._held >= wp.hold_steps) or self._steps_here >= wp.timeout_steps:
                self.index += 1
                self._goal = None
                continue
            self._steps_here += 1
            if arrived:
                self._held += 1
            return _action(_capped(error, wp.max_step_m), wp.gripper)
        last = self.waypoints[-1].gripper if self.waypoints else 0.0
        return _action(np.zeros(3), last)

    def rollout(self, obs: RobotObservation, steps: int) -> np.ndarray:
        """(steps, 4): the next ``steps`` actions from ``obs`` had the episode gone on, the tool moved exactly
        as commanded (no physics). A demonstration ends at success, often inside a task's margin (2 cm from
        the reach target, 8 cm of a 14 cm push): its last chunks padded with these rather than with zero
        motion teach a policy to go on to the goal, not to stop at the margin. Advances the expert."""
        actions = []
        for _ in range(steps):
            action = self.act(obs)
            pose = obs.ee_pose.copy()
            pose[:3] += action[:3]
            obs = replace(obs, ee_pose=pose, gripper=float(action[3]))
            actions.append(action)
        return np.stack(actions) if actions else np.zeros((0, EXPERT_ACTION_DIMS), np.float32)


def _capped(error: np.ndarray, max_step: float) -> np.ndarray:
    norm = float(np.linalg.norm(error))
    return error if norm <= max_step else error * (max_step / norm)


def _action(delta: np.ndarray, gripper: float) -> np.ndarray:
    return np.concatenate([delta, [gripper]]).astype(np.float32)
