"""Push: slide the named object in a direction."""

from __future__ import annotations

import numpy as np

from sims.experts import Waypoint, WaypointExpert
from sims.sim_robot import SimRobot
from sims.tasks.base import REGION_X_M, REGION_Y_M, ScenePlanner, Task
from sims.world import World

__all__ = ["PushTask", "DIRECTIONS"]

# Directions as a person sees them in the scene camera, which faces the robot (base at the
# origin facing +x): the image's left is the robot's right (-y).
DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (0.0, -1.0),
    "right": (0.0, 1.0),
    "toward the robot": (-1.0, 0.0),
    "away from the robot": (1.0, 0.0),
}


class PushTask(Task):
    """Push the named object some way in a direction.

    | scene        | a 4 cm cube or cylinder (the target) and 2 distractors off its path, distinct colours       |
    |--------------|------------------------------------------------------------------------------------------|
    | instruction  | "push the {colour} {shape} to the {left,right}" / "push the ... {toward,away from} the robot" |
    | observation  | robot state (joints, ee pose, gripper) + scene / wrist camera images                       |
    | actions      | ee_delta (dx, dy, dz, gripper) at the control rate; joint_target also accepted           |
    | success      | the target moved >= 8 cm along the direction and <= 6 cm across it, and stands on the floor |
    | episode end  | success (terminated) or 150 control steps (truncated; 7.5 s at 20 Hz)                     |

    Left and right are as seen in the scene camera, which faces the robot: left is -y.
    Expert: closed gripper behind the object, down to 2 cm, then a slow straight push.
    """

    name = "push"
    max_steps = 150
    example = "push the blue cube to the left"
    targets = ("cube", "cylinder")
    min_distance_m = 0.08
    max_sideways_m = 0.06
    approach_m = 0.07  # pusher starts this far behind the object's centre
    travel_m = 0.14  # pusher moves this far past the object's starting centre

    def build(self, world: World, robot: SimRobot, rng: np.random.Generator) -> str:
        self._attach(world, robot)
        planner = ScenePlanner(rng)
        colours = planner.colours(3)
        self.direction_name = list(DIRECTIONS)[int(rng.integers(len(DIRECTIONS)))]
        self.direction = np.array(DIRECTIONS[self.direction_name])
        # Keep the whole push (approach to end) inside the object region.
        back, ahead = self.approach_m + 0.02, self.travel_m + 0.04
        x_range, y_range = _shrink(REGION_X_M, self.direction[0], back, ahead), _shrink(REGION_Y_M, self.direction[1], back, ahead)
        xy = planner.place(0.06, x_range, y_range)
        shape = self.targets[0] if rng.random() < 0.7 else self.targets[1]
        self.target = self._spawn(rng, colours[0], shape, xy)
        corridor = (xy - self.direction * back, xy + self.direction * ahead, 0.09)
        self._spawn_distractors(rng, planner, colours[1:], avoid_segment=corridor)
        self.instruction = f"push the {self.target.name} to the {self.direction_name}"
        if self.direction_name.endswith("robot"):
            self.instruction = f"push the {self.target.name} {self.direction_name}"
        return self.instruction

    def moved(self) -> tuple[float, float]:
        """(along, across) displacement of the target from its start, metres."""
        assert self.target is not None
        delta = self.target_position()[:2] - np.array(self.target.start[:2])
        along = float(np.dot(delta, self.direction))
        across = float(abs(delta[0] * self.direction[1] - delta[1] * self.direction[0]))
        return along, across

    def success(self) -> bool:
        along, across = self.moved()
        on_floor = self.target_position()[2] < 0.05
        return along >= self.min_distance_m and across <= self.max_sideways_m and on_floor

    def expert(self) -> WaypointExpert:
        start = self.target_position()
        d3 = np.array([self.direction[0], self.direction[1], 0.0])
        low = 0.02  # pusher height: below the object's centre so it does not ride over
        behind = np.array([start[0], start[1], low]) - d3 * self.approach_m
        end = np.array([start[0], start[1], low]) + d3 * self.travel_m
        return WaypointExpert(
            [
                Waypoint(behind + np.array([0.0, 0.0, 0.1]), gripper=1.0, tolerance_m=0.02),
                Waypoint(behind, gripper=1.0, tolerance_m=0.01, max_step_m=0.015),
                Waypoint(end, gripper=1.0, tolerance_m=0.015, max_step_m=0.01, timeout_steps=60),
                Waypoint(end + np.array([0.0, 0.0, 0.1]), gripper=1.0, tolerance_m=0.02),
            ]
        )


def _shrink(bounds: tuple[float, float], direction: float, back: float, ahead: float) -> tuple[float, float]:
    """Narrow a 1-D range so start - direction*back and start + direction*ahead stay inside it."""
    low, high = bounds
    if direction > 0:
        return low + back, high - ahead
    if direction < 0:
        return low + ahead, high - back
    return low, high
