"""SimEnv: one world, one robot, one task and its cameras, stepped at the control rate.

Gymnasium-shaped: ``reset(*, seed=None) -> (observation, info)`` and
``step(action) -> StepResult``. A control step applies the action (if any),
runs the watchdog, then advances physics by ``physics_hz / control_hz``
substeps. Nothing renders unless asked (``render``), because a camera image
costs more than a hundred physics steps.

Determinism: the same seed gives the same scene and, with the same actions,
the same trajectory, bit for bit (each reset rebuilds the world from scratch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentrt.errors import ConfigError
from sims.camera import Cameras, SceneCameraConfig
from sims.descriptions import get_description
from sims.experts import WaypointExpert
from sims.robot import Action, RobotConfig, RobotObservation
from sims.sim_robot import SimRobot
from sims.tasks import TASKS, make_task
from sims.world import World, WorldConfig

__all__ = ["SimEnvConfig", "SimEnv", "StepResult"]

log = logging.getLogger(__name__)

SETTLE_STEPS = 24  # physics steps after spawning, so objects rest before the episode's first step


@dataclass
class SimEnvConfig:
    task: str = "reach"
    robot: RobotConfig = field(default_factory=RobotConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    camera: SceneCameraConfig = field(default_factory=SceneCameraConfig)

    def __post_init__(self) -> None:
        if self.task.replace("-", "_") not in TASKS:
            raise ConfigError(f"SimEnvConfig.task: expected one of {', '.join(TASKS)}, got {self.task!r}")
        self.task = self.task.replace("-", "_")
        get_description(self.robot.robot)  # an unknown robot: one line now, not a node failing at start
        ratio = self.world.physics_hz / self.robot.control_hz
        if abs(ratio - round(ratio)) > 1e-6 or ratio < 1:
            raise ConfigError(
                f"control_hz: expected a divisor of physics_hz={self.world.physics_hz:g} (e.g. 10, 20, 30, 40, 60), "
                f"got {self.robot.control_hz:g}"
            )


@dataclass
class StepResult:
    observation: RobotObservation
    success: bool
    terminated: bool  # success: the episode is over
    truncated: bool  # ran out of steps
    info: dict[str, Any]


class SimEnv:
    """A task episode runner over PyBullet; see the module docstring."""

    def __init__(self, config: SimEnvConfig | None = None) -> None:
        self.config = config or SimEnvConfig()
        self.world = World(self.config.world)
        self.robot = SimRobot(self.config.robot, self.world)
        self.task = make_task(self.config.task)
        self.cameras = Cameras(self.world, self.config.camera)
        self.substeps = int(round(self.config.world.physics_hz / self.config.robot.control_hz))
        self.steps = 0
        self.seed: int | None = None
        self._rng: np.random.Generator | None = None
        self._connected = False
        if self.task.needs_gripper and not self.robot.has_gripper:
            raise ConfigError(
                f"task '{self.task.name}' needs a gripper but robot '{self.config.robot.robot}' has none: "
                "pick a robot with a gripper (panda, xarm6)"
            )

    def connect(self) -> None:
        if self._connected:
            return
        self.robot.connect()
        try:
            self.cameras.setup()
        except Exception:
            self.world.disconnect()
            raise
        self._connected = True

    def close(self) -> None:
        self.robot.disconnect()
        self.world.disconnect()
        self._connected = False

    def __enter__(self) -> SimEnv:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def renderer(self) -> str:
        return self.cameras.renderer

    @property
    def instruction(self) -> str:
        return self.task.instruction

    def reset(self, *, seed: int | None = None) -> tuple[RobotObservation, dict[str, Any]]:
        """Rebuild the world and a new scene; ``seed`` makes it reproducible (None continues the last stream)."""
        if seed is not None and seed < 0:
            raise ConfigError(f"seed: expected an integer >= 0 (or None), got {seed}")
        self.connect()
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        self.seed = seed
        self.world.reset()
        self.robot.load()
        self.task.build(self.world, self.robot, self._rng)
        self.cameras.setup()
        self.world.step(SETTLE_STEPS)
        self.steps = 0
        return self.robot.get_observation(), {"instruction": self.task.instruction, "seed": seed}

    def step(self, action: Action | None) -> StepResult:
        """One control step. ``None`` sends nothing (the watchdog decides whether the robot holds).

        A bad action raises ``ActionError`` after the robot has been told to hold; the
        step is not taken, so the caller decides whether to go on.
        """
        if action is not None:
            self.robot.send_action(action)
        self.robot.enforce_watchdog()
        self.world.step(self.substeps)
        self.steps += 1
        self.task.observe()
        success = bool(self.task.success())  # tasks may compute it in numpy; callers get a plain bool
        truncated = not success and self.steps >= self.task.max_steps
        info = {"steps": self.steps, "sim_time_s": self.world.time_ns / 1e9}
        return StepResult(self.robot.get_observation(), success, success, truncated, info)

    def expert(self) -> WaypointExpert:
        return self.task.expert()

    def render(self, camera: str = "scene") -> np.ndarray:
        """An RGB image (H, W, 3) uint8 from the ``scene`` or ``wrist`` camera."""
        if camera == "scene":
            return self.cameras.scene()
        if camera == "wrist":
            return self.cameras.wrist(self.robot.body, self.robot.description.ee_link)
        raise ConfigError(f"unknown camera '{camera}': expected scene or wrist")
