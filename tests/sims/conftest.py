"""Shared fixtures: small worlds that never render unless a test asks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sims.camera import SceneCameraConfig
from sims.env import SimEnv, SimEnvConfig
from sims.robot import RobotConfig
from sims.sim_robot import SimRobot


@pytest.fixture
def panda() -> Iterator[SimRobot]:
    robot = SimRobot(RobotConfig(robot="panda"))
    robot.connect()
    try:
        yield robot
    finally:
        robot.disconnect()


def make_env(task: str = "reach", **robot: object) -> SimEnv:
    return SimEnv(SimEnvConfig(task=task, robot=RobotConfig(**robot), camera=SceneCameraConfig(renderer="tiny", width=64, height=64)))  # type: ignore[arg-type]
