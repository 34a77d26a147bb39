"""Reach: touch the named object."""

from __future__ import annotations

import numpy as np

from sims.experts import Waypoint, WaypointExpert
from sims.sim_robot import SimRobot
from sims.tasks.base import SHAPES, ScenePlanner, Task
from sims.world import World

__all__ = ["ReachTask"]


class ReachTask(Task):
    """Touch the named object.

    | scene        | 3 objects (cube / cylinder / sphere, 4 cm) in distinct colours, random xy and yaw on the floor |
    |--------------|------------------------------------------------------------------------------------------|
    | instruction  | "touch the {colour} {shape}", e.g. "touch the red cube"                                  |
    | observation  | robot state (joints, ee pose, gripper) + scene / wrist camera images                       |
    | actions      | ee_delta (dx, dy, dz, gripper) at the control rate; joint_target also accepted           |
    | success      | the end-effector point is within 2 cm of the target's bounding box, or the robot touches it |
    | episode end  | success (terminated) or 100 control steps (truncated; 5 s at 20 Hz)                      |

    Expert: above the target, then down onto its top.
    """

    name = "reach"
    max_steps = 100
    example = "touch the red cube"
    targets = SHAPES
    touch_margin_m = 0.02

    def build(self, world: World, robot: SimRobot, rng: np.random.Generator) -> str:
        self._attach(world, robot)
        planner = ScenePlanner(rng)
        colours = planner.colours(3)
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        self.target = self._spawn(rng, colours[0], shape, planner.place(0.06))
        self._spawn_distractors(rng, planner, colours[1:])
        self.instruction = f"touch the {self.target.name}"
        return self.instruction

    def success(self) -> bool:
        assert self.world is not None and self.robot is not None and self.target is not None
        low, high = self.world.aabb(self.target.body)
        ee = self.ee_position()
        gap = np.maximum(np.maximum(np.array(low) - ee, ee - np.array(high)), 0.0)
        return float(np.linalg.norm(gap)) <= self.touch_margin_m or self.world.in_contact(self.robot.body, self.target.body)

    def expert(self) -> WaypointExpert:
        top = self.target_position() + np.array([0.0, 0.0, 0.5 * self._size()])
        return WaypointExpert(
            [
                Waypoint(top + np.array([0.0, 0.0, 0.08]), gripper=1.0, tolerance_m=0.02),
                Waypoint(top + np.array([0.0, 0.0, 0.005]), gripper=1.0, max_step_m=0.01, hold_steps=20),
            ]
        )

    def _size(self) -> float:
        assert self.target is not None
        return self.target.size_m
