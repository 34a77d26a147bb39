"""The robot interface: conformance, limits, bad actions, watchdog, connect/retry, other robots."""

from __future__ import annotations

import numpy as np
import pytest

from agentrt.errors import ActionError, ConfigError, RobotError
from sims.check import check_robot
from sims.descriptions import ROBOTS
from sims.robot import Action, RobotConfig
from sims.safety import clip_joint_target, workspace_excess
from sims.sim_robot import SimRobot
from sims.world import World


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_every_described_robot_conforms(name: str) -> None:
    check_robot(SimRobot(RobotConfig(robot=name)))


def step(robot: SimRobot, action: Action | None = None, n: int = 1) -> None:
    for _ in range(n):
        if action is not None:
            robot.send_action(action)
        robot.enforce_watchdog()
        robot.world.step(12)  # one 20 Hz control step at 240 Hz physics


def reach(robot: SimRobot, goal: np.ndarray, steps: int = 80) -> float:
    for _ in range(steps):
        ee = robot.get_observation().ee_pose[:3]
        step(robot, Action.ee_delta(np.clip(goal - ee, -0.02, 0.02), 0.0))
    return float(np.linalg.norm(robot.get_observation().ee_pose[:3] - goal))


def test_panda_reaches_through_ee_deltas(panda: SimRobot) -> None:
    assert reach(panda, np.array([0.5, -0.15, 0.12])) < 0.01


def test_kuka_loads_and_reaches_through_the_same_interface() -> None:
    with SimRobot(RobotConfig(robot="kuka_iiwa")) as kuka:
        assert kuka.n_joints == 7 and not kuka.has_gripper
        assert reach(kuka, np.array([0.55, 0.1, 0.15])) < 0.01
        assert kuka.get_observation().gripper == 0.0


def test_out_of_limit_actions_are_clipped_and_counted(panda: SimRobot) -> None:
    sent = panda.send_action(Action.ee_delta([0.5, -0.5, 0.0], 3.0))
    step_m = panda.config.max_ee_speed_m_s / panda.config.control_hz
    assert np.all(np.abs(sent.values[:3]) <= step_m + 1e-9)
    assert sent.values[-1] == 1.0
    assert panda.stats.clipped == 1
    # Inside the limits: nothing clipped, nothing counted.
    panda.send_action(Action.ee_delta([0.001, 0.0, 0.0], 0.5))
    assert panda.stats.clipped == 1
    # Joint targets past a joint limit are clipped to it; the robot goes one control step toward it.
    lower, upper = panda.joint_limits
    assert np.allclose(clip_joint_target(upper + 1.0, lower, upper)[0], upper)
    sent = panda.send_action(Action.joint_target(upper + 1.0))
    assert np.all(sent.values <= upper) and np.all(sent.values >= lower)
    assert panda.stats.clipped == 2


def test_joint_targets_keep_the_tool_point_in_the_box_and_under_the_speed_limit(panda: SimRobot) -> None:
    """Item 15.1: joint targets obey the workspace box and the Cartesian speed limit, measured in sim time."""
    cfg = panda.config
    home = panda.get_observation().joint_positions
    swings = [  # each drives the tool point out of the box if followed
        home + [2.5, 1.0, 0, 0, 0, 0, 0],  # sideways and down: y > 0.45, then through the floor
        home + [-2.5, 1.5, 0, 0, 0, 0, 0],  # the other way
        home + [2.9, 0.0, 0, 0, 0, 0, 0],  # behind the base: x < 0.2
        home + [0.0, -1.2, 0, 1.0, 0, -1.0, 0],  # up and back: z > 0.65
    ]
    excess, speeds = [], []
    travelled = 0.0
    prev = panda.get_observation().ee_pose[:3]
    for target in swings:
        for _ in range(60):
            step(panda, Action.joint_target(target, 0.0))
            here = panda.get_observation().ee_pose[:3]
            excess.append(float(workspace_excess(here, cfg).max()))
            speeds.append(float(np.abs(here - prev).max()) * cfg.control_hz)  # per axis, over one step of sim time
            travelled += float(np.linalg.norm(here - prev))
            prev = here
    assert max(excess) <= 0.002, f"tool point {max(excess) * 1000:.1f} mm outside the box"
    # The commanded tool point moves at most max_ee_speed_m_s; the measured one follows it under position control.
    assert max(speeds) <= 1.05 * cfg.max_ee_speed_m_s, f"tool point at {max(speeds):.2f} m/s"
    assert panda.stats.clipped > 0 and travelled > 0.3  # limited, not frozen
    # A target whose tool point is inside the box is reached.
    inside = home + [0.4, 0.2, 0, 0.2, 0, 0, 0]
    step(panda, Action.joint_target(inside, 0.0), n=60)
    np.testing.assert_allclose(panda.get_observation().joint_positions, inside, atol=0.01)


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_zero_ee_deltas_hold_the_tool_point(name: str) -> None:
    """Item 15.3: a zero ee_delta holds the tool point still, at home and after a move."""
    with SimRobot(RobotConfig(robot=name)) as robot:
        for moved in (False, True):
            if moved:
                step(robot, Action.ee_delta([0.02, -0.015, -0.01], 0.0), n=6)
                step(robot, n=4)
            start = robot.get_observation().ee_pose[:3]
            drift = []
            for _ in range(50):
                step(robot, Action.ee_delta([0.0, 0.0, 0.0], 0.0))
                drift.append(float(np.linalg.norm(robot.get_observation().ee_pose[:3] - start)))
            assert max(drift) < 0.002, f"{name}: the tool point moved {max(drift) * 1000:.1f} mm (moved first: {moved})"


def test_workspace_box_holds_the_hand(panda: SimRobot) -> None:
    for _ in range(60):
        panda.send_action(Action.ee_delta([0.0, 0.0, -0.03], 0.0))  # straight into the floor
        step(panda)
    z = panda.get_observation().ee_pose[2]
    assert z >= panda.config.workspace_min_m[2] - 0.01
    assert panda.stats.clipped > 0


@pytest.mark.parametrize(
    ("action", "words"),
    [
        (Action("ee_delta", np.array([np.nan, 0, 0, 0])), "NaN"),
        (Action("ee_delta", np.zeros(5)), "expected 4"),
        (Action("teleport", np.zeros(4)), "unknown action kind"),
        (Action("joint_target", np.zeros(3)), "expected 7 joint positions"),
        (Action("ee_delta", np.zeros((2, 4))), "1-D"),
    ],
)
def test_bad_actions_are_rejected_and_the_robot_holds(panda: SimRobot, action: Action, words: str) -> None:
    step(panda, Action.ee_delta([0.02, 0.0, 0.0], 0.0), n=2)  # moving
    with pytest.raises(ActionError, match=words):
        panda.send_action(action)
    assert panda.holding and panda.stats.rejected == 1
    step(panda, n=10)
    velocities = panda.get_observation().joint_velocities
    assert np.max(np.abs(velocities)) < 0.05


def test_watchdog_holds_the_robot_when_actions_stop(panda: SimRobot) -> None:
    start = panda.get_observation().joint_positions
    far = start.copy()
    far[0] += 2.0  # a long swing: at the velocity cap it takes > 1 s
    panda.send_action(Action.joint_target(far))
    deadline_steps = int(panda.config.deadline_ms / 50) + 2
    step(panda, n=deadline_steps + 20)  # no more actions
    obs = panda.get_observation()
    assert panda.stats.watchdog_holds == 1 and panda.holding
    assert obs.joint_positions[0] < far[0] - 0.5  # stopped well short of the stale target
    assert np.max(np.abs(obs.joint_velocities)) < 0.05
    held = obs.joint_positions.copy()
    step(panda, n=20)
    assert np.allclose(panda.get_observation().joint_positions, held, atol=1e-3)
    # A fresh action releases the hold.
    panda.send_action(Action.ee_delta([0.0, 0.0, 0.0], 0.0))
    assert not panda.holding


def test_a_failed_connect_releases_and_a_retry_works(monkeypatch: pytest.MonkeyPatch) -> None:
    robot = SimRobot(RobotConfig(robot="panda"))
    original = World.load_urdf
    calls = {"n": 0}

    def failing(self: World, *args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated load failure")
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(World, "load_urdf", failing)
    with pytest.raises(RobotError, match="could not load robot 'panda'"):
        robot.connect()
    assert not robot.is_connected and robot._world is None  # the world it opened is gone
    robot.connect()
    try:
        assert robot.is_connected
    finally:
        robot.disconnect()


def test_not_connected_is_a_clear_error() -> None:
    with pytest.raises(RobotError, match="not connected"):
        SimRobot().get_observation()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"control_hz": 0}, "control_hz"),
        ({"deadline_ms": -1}, "deadline_ms"),
        ({"deadline_ms": 10.0}, "deadline_ms"),  # shorter than one control period
        ({"workspace_min_m": (1, 0, 0), "workspace_max_m": (0, 1, 1)}, "workspace"),
    ],
)
def test_config_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RobotConfig(**kwargs)


def test_unknown_robot_lists_the_table() -> None:
    with pytest.raises(ConfigError, match="panda"):
        SimRobot(RobotConfig(robot="r2d2"))


def test_two_robots_live_in_one_process() -> None:
    with SimRobot() as a, SimRobot(RobotConfig(robot="kuka_iiwa")) as b:
        assert a.world.client != b.world.client
        step(a, Action.ee_delta([0.02, 0, 0], 0.0), n=5)
        assert np.allclose(b.get_observation().joint_velocities, 0.0, atol=1e-6)


def test_rotation_deltas_turn_the_hand(panda: SimRobot) -> None:
    import pybullet

    def yaw() -> float:
        return float(pybullet.getEulerFromQuaternion(panda.get_observation().ee_pose[3:].tolist())[2])

    step(panda, Action.ee_delta([0, 0, 0], 0.0, drpy=[0, 0, 0]), n=10)
    before = yaw()
    sent = panda.send_action(Action.ee_delta([0, 0, 0], 0.0, drpy=[0.0, 0.0, 1.0]))  # clipped to 0.1 rad
    assert sent.values.shape == (7,) and abs(sent.values[5]) == pytest.approx(0.1)
    step(panda, n=1)
    step(panda, Action.ee_delta([0, 0, 0], 0.0, drpy=[0.0, 0.0, 0.1]), n=4)
    step(panda, Action.ee_delta([0, 0, 0], 0.0), n=10)
    turned = (yaw() - before + np.pi) % (2 * np.pi) - np.pi
    assert abs(abs(turned) - 0.5) < 0.05
