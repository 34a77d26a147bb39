"""Reading a QA scene off the PyBullet world: is each object visible, which one the gripper holds,
where a world point lands in the scene camera's image."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["all_visible", "held_object", "image_pixel", "HELD_LIFT_M"]

HELD_LIFT_M = 0.01  # an object touching the robot this far above its resting height is held


def all_visible(world: Any, eye: tuple[float, float, float], bodies: list[int]) -> bool:
    """Each body is hit first by at least 2 of 5 rays from the camera at ``eye`` (centre, top, three sides)."""
    p, c = world.p, world.client
    offsets = [(0, 0, 0), (0, 0, 0.015), (0, 0.012, 0), (0, -0.012, 0), (0.012, 0, 0.008)]
    for body in bodies:
        centre = np.array(world.position(body))
        ends = [(centre + np.array(off)).tolist() for off in offsets]
        hits = p.rayTestBatch([list(eye)] * len(ends), ends, physicsClientId=c)
        if sum(h[0] == body for h in hits) < 2:
            return False
    return True


def held_object(env: Any) -> int | None:
    """Index (in ``env.task.objects``) of the object the gripper holds: touching the robot and lifted
    off the floor by more than ``HELD_LIFT_M``; None when it holds nothing."""
    for i, o in enumerate(env.task.objects):
        if env.world.position(o.body)[2] > o.size_m / 2 + HELD_LIFT_M and env.world.in_contact(env.robot.body, o.body):
            return i
    return None


def image_pixel(xyz: tuple[float, float, float], size: int) -> tuple[float, float]:
    """World point -> (u, v) pixel in the square scene camera of ``size`` px (u grows to the image's right)."""
    from sims.camera import SceneCameraConfig, project_scene

    uv = project_scene(np.asarray(xyz), SceneCameraConfig(width=size, height=size))
    return float((uv[0] + 1) / 2 * size), float((uv[1] + 1) / 2 * size)
