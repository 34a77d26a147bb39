"""sims: PyBullet worlds and tasks, scripted experts, and the robot (actuator) interface.

PyBullet itself is imported lazily (on ``World.connect``), so importing ``sims``
is cheap and works without it. The sim node (``sims.node``) and its wire
dependencies are imported only when used.

    from sims import SimEnv, SimEnvConfig, Action
    env = SimEnv(SimEnvConfig(task="reach"))
    obs, info = env.reset(seed=0)            # info["instruction"] == "touch the ... "
    expert = env.expert()
    while True:
        result = env.step(Action("ee_delta", expert.act(obs)))
        obs = result.observation
        if result.terminated or result.truncated:
            break
    env.close()
"""

from __future__ import annotations

from sims.camera import Cameras, SceneCameraConfig
from sims.check import check_robot
from sims.clock import CLOCKS, LockstepClock, RealTimeClock, make_clock
from sims.descriptions import ROBOTS, RobotDescription, get_description
from sims.env import SimEnv, SimEnvConfig, StepResult
from sims.experts import Waypoint, WaypointExpert
from sims.loop import EpisodeResult, ExpertSource, run_episode
from sims.robot import ACTION_KINDS, Action, Robot, RobotConfig, RobotObservation, RobotStats, Watchdog
from sims.sim_robot import SimRobot
from sims.tasks import TASKS, Task, make_task
from sims.video import VideoWriter
from sims.viewer import Viewer, ViewerConfig
from sims.world import World, WorldConfig

__all__ = [
    "ACTION_KINDS",
    "CLOCKS",
    "ROBOTS",
    "TASKS",
    "Action",
    "SceneCameraConfig",
    "Cameras",
    "EpisodeResult",
    "ExpertSource",
    "LockstepClock",
    "RealTimeClock",
    "Robot",
    "RobotConfig",
    "RobotDescription",
    "RobotObservation",
    "RobotStats",
    "SimEnv",
    "SimEnvConfig",
    "SimRobot",
    "StepResult",
    "Task",
    "VideoWriter",
    "Viewer",
    "ViewerConfig",
    "Watchdog",
    "Waypoint",
    "WaypointExpert",
    "World",
    "WorldConfig",
    "check_robot",
    "get_description",
    "make_clock",
    "make_task",
    "run_episode",
]
