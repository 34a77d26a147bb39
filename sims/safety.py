"""Action validation and safety clipping, shared by simulated and real robots.

Pure numpy, no simulator: a real driver calls the same functions so a limit
means the same thing on both sides.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agentrt.errors import ActionError
from sims.robot import ACTION_KINDS, Action, RobotConfig

__all__ = [
    "validate_action",
    "clip_ee_delta",
    "clip_joint_target",
    "clip_to_workspace",
    "limit_joint_motion",
    "workspace_excess",
    "WALL_SLACK_M",
    "LEAD_STEPS",
]


def validate_action(action: Action, *, n_joints: int, has_gripper: bool) -> np.ndarray:
    """Return the action's values as float64, or raise ActionError saying what was wrong.

    Wrong kind, wrong length and non-finite values are errors, not things to clip:
    they mean the sender and the robot disagree, and guessing would move the arm.
    """
    if not isinstance(action, Action):
        raise ActionError(f"expected a sims.robot.Action, got {type(action).__name__}; build one with Action.ee_delta(...)")
    if action.kind not in ACTION_KINDS:
        raise ActionError(f"unknown action kind '{action.kind}': expected one of {', '.join(ACTION_KINDS)}; the robot holds")
    try:
        values = np.asarray(action.values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ActionError(f"{action.kind} action values are not numbers: {action.values!r}; the robot holds") from None
    if values.ndim != 1:
        raise ActionError(f"{action.kind} action: expected a 1-D vector, got shape {values.shape}; the robot holds")
    if action.kind == "ee_delta":
        allowed: tuple[int, ...] = (4, 7)
        meaning = "4 (dx,dy,dz,gripper) or 7 (dx,dy,dz,droll,dpitch,dyaw,gripper)"
    else:
        allowed = (n_joints, n_joints + 1) if has_gripper else (n_joints,)
        meaning = f"{n_joints} joint positions" + (f" or {n_joints + 1} (+ gripper)" if has_gripper else "")
    if values.shape[0] not in allowed:
        raise ActionError(f"{action.kind} action: expected {meaning} values, got {values.shape[0]}; the robot holds")
    if not np.all(np.isfinite(values)):
        raise ActionError(f"{action.kind} action contains NaN or inf: {values.tolist()}; the robot holds")
    return values


def clip_ee_delta(values: np.ndarray, config: RobotConfig) -> tuple[np.ndarray, bool]:
    """Clip a validated ee_delta to the per-step speed limits and gripper range; (clipped, changed)."""
    dt = config.control_dt_s
    out = values.copy()
    step = config.max_ee_speed_m_s * dt
    out[:3] = np.clip(out[:3], -step, step)
    if out.shape[0] == 7:
        rot = config.max_ee_rot_speed_rad_s * dt
        out[3:6] = np.clip(out[3:6], -rot, rot)
    out[-1] = np.clip(out[-1], 0.0, 1.0)
    return out, bool(np.any(out != values))


def clip_to_workspace(position: np.ndarray, config: RobotConfig) -> tuple[np.ndarray, bool]:
    """Clip an end-effector target position into the workspace box; (clipped, changed)."""
    low = np.asarray(config.workspace_min_m, dtype=np.float64)
    high = np.asarray(config.workspace_max_m, dtype=np.float64)
    out = np.clip(position, low, high)
    return out, bool(np.any(out != position))


def clip_joint_target(
    values: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, bool]:
    """Clip joint positions to their limits and an optional trailing gripper to [0, 1]; (clipped, changed)."""
    out = values.copy()
    n = lower.shape[0]
    out[:n] = np.clip(out[:n], lower, upper)
    if out.shape[0] > n:
        out[n] = np.clip(out[n], 0.0, 1.0)
    return out, bool(np.any(out != values))


# How far outside the box a commanded tool point may be (m): a hand sliding along a wall moves on a joint-space
# line whose tool path bulges out by a fraction of a millimetre per step; without slack it would stall there.
WALL_SLACK_M = 1e-3


# How many control steps of ee motion a command may lead the measured tool point: position control lags its
# command (more under gravity, stretched out), one step of lead would stall a sagging arm; more would let a
# blocked arm catch up in a rush once freed.
LEAD_STEPS = 2.0


def workspace_excess(position: np.ndarray, config: RobotConfig) -> np.ndarray:
    """How far ``position`` is outside the workspace box, per axis (m; 0 inside)."""
    low = np.asarray(config.workspace_min_m, dtype=np.float64)
    high = np.asarray(config.workspace_max_m, dtype=np.float64)
    return np.maximum(low - position, 0.0) + np.maximum(position - high, 0.0)


def limit_joint_motion(
    target: np.ndarray,
    start: np.ndarray,
    tool_point: Callable[[np.ndarray], np.ndarray],
    config: RobotConfig,
    *,
    measured: np.ndarray | None = None,
    bisections: int = 12,
) -> tuple[np.ndarray, bool]:
    """The arm joints to command for one control step from ``start`` toward ``target``; (joints, limited).

    Whatever the action kind, the joints an arm is told to go to are checked here by
    their forward kinematics (``tool_point``: joints -> tool point xyz), so a joint
    target or an IK solution obeys the same limits as an end-effector step:

    1. no joint moves more than ``max_joint_speed_rad_s`` x control period from
       ``start``: the whole step is scaled down, keeping its direction in joint
       space, so the arm gets there within the step and the tool's path between
       two checked points is short;
    2. the tool point moves at most ``max_ee_speed_m_s`` x control period per axis
       from where ``start`` puts it; with ``measured`` (the tool point now) given,
       the command leads it by at most ``LEAD_STEPS`` such steps (or what it leads
       by now), so a blocked arm does not wind up a far target and then rush to it;
    3. the tool point stays in the workspace box (give or take ``WALL_SLACK_M``, so
       a hand can slide along a wall although the joint-space line between two
       points on it bulges out); an arm that starts outside it (pushed there, or a
       box set around it) may only move back toward it, no axis getting farther out.
       With ``measured`` given, the same holds for the measured tool point moved
       by the commanded step, so an arm that sags below its command stops at the
       wall too.

    A step that breaks 2 or 3 is shortened along the joint-space line from
    ``start``, to the farthest point that keeps them (bisection): the arm moves at
    the speed limit and stops at the box's wall; a target outside the box is
    never reached, the arm waits at the wall. ``limited`` says that 2 or 3 cut the
    step (1 alone is the motors' velocity cap: the arm just takes more steps).
    ``target`` and ``start`` are within the joint limits (``clip_joint_target``
    first); the result is too.
    """
    start = np.asarray(start, dtype=np.float64)
    step = config.max_joint_speed_rad_s * config.control_dt_s
    move = np.asarray(target, dtype=np.float64) - start
    largest = float(np.max(np.abs(move))) if move.size else 0.0
    goal = start + move * min(1.0, step / largest) if largest > 0 else start.copy()
    origin = tool_point(start)
    allowed_excess = np.maximum(workspace_excess(origin, config), WALL_SLACK_M)
    max_move = config.max_ee_speed_m_s * config.control_dt_s + 1e-9

    here = origin if measured is None else np.asarray(measured, dtype=np.float64)
    allowed_here = np.maximum(workspace_excess(here, config), WALL_SLACK_M)
    allowed_gap = np.maximum(np.abs(origin - here), LEAD_STEPS * max_move)  # the start itself is always allowed

    def within(q: np.ndarray) -> bool:
        point = tool_point(q)
        moved = point - origin
        return bool(
            np.all(np.abs(moved) <= max_move) and np.all(np.abs(point - here) <= allowed_gap)
            and np.all(workspace_excess(point, config) <= allowed_excess)
            # Where the measured tool point will be if its error (sag under gravity, a motor's force cap) stays.
            and np.all(workspace_excess(here + moved, config) <= allowed_here)
        )

    if within(goal):
        return goal, False
    low, high = 0.0, 1.0  # fractions of the step: low is allowed (the start is), high is not
    for _ in range(bisections):
        middle = 0.5 * (low + high)
        if within(start + middle * (goal - start)):
            low = middle
        else:
            high = middle
    return start + low * (goal - start), True
