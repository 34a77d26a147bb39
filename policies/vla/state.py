"""The policy's state vector, without torch: the collection workers build it and need not load torch."""

from __future__ import annotations

import numpy as np

__all__ = ["robot_state"]


def robot_state(ee_pose: np.ndarray, gripper: float) -> np.ndarray:
    """The policy's state vector: tool point xyz and gripper, float32 (4,)."""
    return np.array([*np.asarray(ee_pose)[:3], gripper], dtype=np.float32)
