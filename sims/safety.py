"""Action validation and safety clipping, shared by simulated and real robots.

Pure numpy, no simulator: a real driver calls the same functions so a limit
means the same thing on both sides.
"""

from __future__ import annotations

import numpy as np

from agentrt.errors import ActionError
from sims.robot import ACTION_KINDS, Action, RobotConfig

__all__ = ["validate_action", "clip_ee_delta", "clip_joint_target", "clip_to_workspace"]


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
