"""Pick and place: put the named object in the tray."""

from __future__ import annotations

import numpy as np

from sims.experts import Waypoint, WaypointExpert
from sims.sim_robot import SimRobot
from sims.tasks.base import ScenePlanner, Task
from sims.world import World

__all__ = ["PickPlaceTask"]

TRAY_RGBA = (0.55, 0.45, 0.35, 1.0)  # brown: not one of the object colours


class PickPlaceTask(Task):
    """Pick the named object up and put it in the tray.

    | scene        | a brown 12 cm tray, a 4 cm cube or cylinder (the target) and 1 distractor, distinct colours |
    |--------------|------------------------------------------------------------------------------------------|
    | instruction  | "put the {colour} {shape} in the tray", e.g. "put the green cube in the tray"            |
    | observation  | robot state (joints, ee pose, gripper) + scene / wrist camera images                       |
    | actions      | ee_delta (dx, dy, dz, gripper) at the control rate; needs a robot with a gripper         |
    | success      | the target rests inside the tray's walls, below their top, and the gripper no longer holds it |
    | episode end  | success (terminated) or 200 control steps (truncated; 10 s at 20 Hz)                      |

    Expert: open above the object, down, close, lift, over the tray, down, open, up.
    """

    name = "pick_place"
    max_steps = 200
    example = "put the green cube in the tray"
    targets = ("cube", "cylinder")
    needs_gripper = True
    tray_inner_m = 0.12

    LIFTED_M = 0.03  # above its start: the target was picked up

    def build(self, world: World, robot: SimRobot, rng: np.random.Generator) -> str:
        self._attach(world, robot)
        self.lifted, self.held = False, False
        self.released_at: np.ndarray | None = None  # where the target last left the gripper after a lift
        planner = ScenePlanner(rng)
        colours = planner.colours(2)
        tray_xy = planner.place(0.12)
        self.tray_center = (float(tray_xy[0]), float(tray_xy[1]))
        self.tray = world.add_tray(self.tray_center, self.tray_inner_m, TRAY_RGBA)
        shape = self.targets[0] if rng.random() < 0.7 else self.targets[1]
        self.target = self._spawn(rng, colours[0], shape, planner.place(0.06), upright=True)
        self._spawn_distractors(rng, planner, colours[1:])
        self.instruction = f"put the {self.target.name} in the tray"
        return self.instruction

    def in_tray(self) -> bool:
        pos = self.target_position()
        return self.over_tray(pos) and pos[2] < 0.05

    def over_tray(self, pos: np.ndarray) -> bool:
        """Is ``pos`` (x, y[, z]) within the tray's walls, seen from above?"""
        half = self.tray_inner_m / 2
        return bool(abs(pos[0] - self.tray_center[0]) <= half and abs(pos[1] - self.tray_center[1]) <= half)

    def goal_position(self) -> np.ndarray:
        return np.array([self.tray_center[0], self.tray_center[1], 0.0])

    def success(self) -> bool:
        assert self.world is not None and self.robot is not None and self.target is not None
        return self.in_tray() and not self.world.in_contact(self.robot.body, self.target.body)

    def observe(self) -> None:
        assert self.world is not None and self.robot is not None and self.target is not None
        pos = self.target_position()
        held = self.world.in_contact(self.robot.body, self.target.body)
        self.lifted = self.lifted or pos[2] - self.target.start[2] > self.LIFTED_M
        if self.held and not held and self.lifted:
            self.released_at = pos
        self.held = held

    def outcome(self) -> str:
        """success | not lifted | held at the end | released outside the tray | released above the tray (not settled
        inside: on a wall, or bounced out)."""
        if self.success():
            return "success"
        if not self.lifted:
            return "not lifted"
        if self.held or self.released_at is None:
            return "held at the end"
        return "released above the tray" if self.over_tray(self.released_at) else "released outside the tray"

    def expert(self) -> WaypointExpert:
        obj = self.target_position()
        tray = np.array([self.tray_center[0], self.tray_center[1], 0.0])
        high, grasp_z = 0.16, max(obj[2], 0.015)
        return WaypointExpert(
            [
                Waypoint(np.array([obj[0], obj[1], high]), gripper=0.0, tolerance_m=0.015),
                Waypoint(np.array([obj[0], obj[1], grasp_z]), gripper=0.0, tolerance_m=0.008, max_step_m=0.015),
                Waypoint(np.array([obj[0], obj[1], grasp_z]), gripper=1.0, tolerance_m=0.02, hold_steps=6),
                Waypoint(np.array([obj[0], obj[1], high]), gripper=1.0, tolerance_m=0.02),
                Waypoint(tray + np.array([0.0, 0.0, high]), gripper=1.0, tolerance_m=0.015),
                Waypoint(tray + np.array([0.0, 0.0, 0.07]), gripper=1.0, tolerance_m=0.015, max_step_m=0.015),
                Waypoint(tray + np.array([0.0, 0.0, 0.07]), gripper=0.0, tolerance_m=0.03, hold_steps=5),
                Waypoint(tray + np.array([0.0, 0.0, high]), gripper=0.0, tolerance_m=0.02),
            ]
        )
