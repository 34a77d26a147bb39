"""The task contract and the seeded scene sampler every task uses.

A task builds its scene into a reset world from a seeded ``numpy`` generator,
states its goal as a natural-language ``instruction``, checks ``success()``
from simulator state, and hands out a scripted ``expert()`` that solves it with
the same actions a policy emits (ee delta + gripper at the control rate).

Contract (every subclass; its docstring is its spec: scene, instruction,
success, episode end):

- ``build(world, robot, rng)`` only spawns bodies and draws from ``rng``; the
  same seed gives the same scene, bit for bit.
- ``success()`` is cheap (no rendering) and side-effect free.
- ``max_steps`` bounds the episode (truncation); success terminates it.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sims.experts import WaypointExpert
from sims.sim_robot import SimRobot
from sims.world import World

__all__ = ["COLOURS", "SHAPES", "SceneObject", "Task", "ScenePlanner"]

# name -> rgba. Distinct hues so an instruction's colour is unambiguous in a 64 px image.
COLOURS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.9, 0.1, 0.1, 1.0),
    "green": (0.1, 0.75, 0.15, 1.0),
    "blue": (0.1, 0.25, 0.95, 1.0),
    "yellow": (0.95, 0.85, 0.1, 1.0),
    "purple": (0.6, 0.15, 0.8, 1.0),
}
SHAPES = ("cube", "cylinder", "sphere")
OBJECT_SIZE_M = 0.04
# Where objects may stand (robot base at the origin, facing +x), in metres.
REGION_X_M = (0.38, 0.68)
REGION_Y_M = (-0.25, 0.25)


@dataclass
class SceneObject:
    colour: str
    shape: str
    body: int
    size_m: float
    start: tuple[float, float, float]

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


class ScenePlanner:
    """Draws object placements from ``rng`` with a minimum spacing (rejection sampling, bounded tries)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.taken: list[tuple[np.ndarray, float]] = []  # (xy, keep-out radius)

    def free(self, xy: np.ndarray, radius: float) -> bool:
        return all(np.linalg.norm(xy - other) >= radius + r for other, r in self.taken)

    def place(
        self,
        radius: float,
        x_range: tuple[float, float] = REGION_X_M,
        y_range: tuple[float, float] = REGION_Y_M,
        avoid_segment: tuple[np.ndarray, np.ndarray, float] | None = None,
    ) -> np.ndarray:
        for _ in range(200):
            xy = np.array([self.rng.uniform(*x_range), self.rng.uniform(*y_range)])
            if not self.free(xy, radius):
                continue
            if avoid_segment is not None and _segment_distance(xy, avoid_segment[0], avoid_segment[1]) < avoid_segment[2]:
                continue
            self.taken.append((xy, radius))
            return xy
        raise RuntimeError("scene sampling failed: the region is too crowded for the requested spacing")

    def colours(self, n: int) -> list[str]:
        names = list(COLOURS)
        order = self.rng.permutation(len(names))
        return [names[i] for i in order[:n]]


def _segment_distance(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(point - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(point - (a + t * ab)))


class Task(abc.ABC):
    """Base class of the sim tasks (see the module docstring for the contract)."""

    name: ClassVar[str]
    max_steps: ClassVar[int]
    needs_gripper: ClassVar[bool] = False
    example: ClassVar[str]  # an instruction it gives; docs and `agentrt sim --help` quote this one
    targets: ClassVar[tuple[str, ...]]  # the shapes its target can have

    def __init__(self) -> None:
        self.world: World | None = None
        self.robot: SimRobot | None = None
        self.instruction = ""
        self.target: SceneObject | None = None
        self.objects: list[SceneObject] = []

    @abc.abstractmethod
    def build(self, world: World, robot: SimRobot, rng: np.random.Generator) -> str:
        """Spawn this episode's scene; return the instruction."""

    @abc.abstractmethod
    def success(self) -> bool: ...

    @abc.abstractmethod
    def expert(self) -> WaypointExpert:
        """A fresh scripted expert for the current episode (uses privileged sim state)."""

    def observe(self) -> None:
        """Called after every control step: a task that tells how an episode failed follows it here."""
        return  # most tasks tell success from the end state alone

    def outcome(self) -> str:
        """How the episode ended, in a few words: "success", or what went wrong where the task can tell."""
        return "success" if self.success() else "not done"

    # -- helpers for subclasses ----------------------------------------------------------------
    def _attach(self, world: World, robot: SimRobot) -> None:
        self.world, self.robot = world, robot
        self.objects = []
        self.target = None

    def _spawn(self, rng: np.random.Generator, colour: str, shape: str, xy: np.ndarray, *, upright: bool = False) -> SceneObject:
        assert self.world is not None
        size = OBJECT_SIZE_M
        # A random yaw makes scenes varied; ``upright`` keeps it small where a grasp must line up.
        yaw = float(rng.uniform(-0.35, 0.35)) if upright else float(rng.uniform(-math.pi, math.pi))
        position = (float(xy[0]), float(xy[1]), size / 2)
        body = self.world.add_object(shape, size, COLOURS[colour], position, yaw_rad=yaw)
        obj = SceneObject(colour=colour, shape=shape, body=body, size_m=size, start=position)
        self.objects.append(obj)
        return obj

    def _spawn_distractors(self, rng: np.random.Generator, planner: ScenePlanner, colours: list[str], **place: object) -> None:
        for colour in colours:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            xy = planner.place(0.06, **place)  # type: ignore[arg-type]
            self._spawn(rng, colour, shape, xy)

    def target_position(self) -> np.ndarray:
        assert self.world is not None and self.target is not None
        return np.array(self.world.position(self.target.body))

    def goal_position(self) -> np.ndarray | None:
        """Where the target must end up when that is a place in the scene (the tray), else None."""
        return None

    def ee_position(self) -> np.ndarray:
        assert self.robot is not None
        return self.robot.get_observation().ee_pose[:3]
