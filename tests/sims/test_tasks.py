"""Tasks and experts: success rates in lockstep, determinism, instructions, scenes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from agentrt.errors import ConfigError
from sims.clock import LockstepClock
from sims.env import SimEnv
from sims.loop import ExpertSource, run_episode
from sims.robot import Action
from sims.tasks import TASKS
from tests.sims.conftest import make_env

EPISODES = 20


@pytest.mark.parametrize("task", sorted(TASKS))
def test_expert_succeeds_on_95_percent_of_20_seeded_episodes(task: str) -> None:
    with make_env(task) as env:
        source = ExpertSource(env)
        results = [run_episode(env, LockstepClock(), source, seed=seed) for seed in range(EPISODES)]
    successes = sum(r.success for r in results)
    failed = [(r.seed, r.instruction) for r in results if not r.success]
    assert successes >= 0.95 * EPISODES, f"{task}: {successes}/{EPISODES}, failed: {failed}"
    assert all(r.rejected == 0 for r in results)


@pytest.mark.parametrize(("robot", "task"), [("kuka_iiwa", "reach"), ("xarm6", "reach"), ("xarm6", "pick_place")])
def test_experts_drive_other_robots_through_the_same_interface(robot: str, task: str) -> None:
    with make_env(task, robot=robot) as env:
        source = ExpertSource(env)
        results = [run_episode(env, LockstepClock(), source, seed=seed) for seed in range(4)]
    assert sum(r.success for r in results) >= 3, [(r.seed, r.instruction, r.success) for r in results]


def rollout(env: SimEnv, seed: int) -> tuple[str, np.ndarray, np.ndarray]:
    obs, info = env.reset(seed=seed)
    expert = env.expert()
    poses, actions = [], []
    while True:
        action = expert.act(obs)
        actions.append(action)
        result = env.step(Action("ee_delta", action))
        obs = result.observation
        poses.append(np.concatenate([obs.joint_positions, obs.ee_pose, env.task.target_position()]))
        if result.terminated or result.truncated:
            return info["instruction"], np.stack(poses), np.stack(actions)


def test_lockstep_is_deterministic_for_a_seed() -> None:
    with make_env("pick_place") as a, make_env("pick_place") as b:
        first = rollout(a, 7)
        rollout(a, 8)  # a different episode in between must not leak into the next
        again = rollout(a, 7)
        other_env = rollout(b, 7)
    for run in (again, other_env):
        assert run[0] == first[0]
        assert np.array_equal(run[1], first[1])  # bit for bit
        assert np.array_equal(run[2], first[2])


def test_seeds_vary_the_scene() -> None:
    with make_env("push") as env:
        scenes = set()
        for seed in range(8):
            env.reset(seed=seed)
            target = env.task.target
            assert target is not None
            scenes.add((env.instruction, tuple(np.round(target.start, 3))))
        colours = {obj.colour for obj in env.task.objects}
        shapes = {obj.shape for obj in env.task.objects}
    assert len(scenes) == 8
    assert len(colours) == len(env.task.objects)  # distinct colours keep the instruction unambiguous
    assert shapes <= {"cube", "cylinder", "sphere"}


@pytest.mark.parametrize(
    ("task", "pattern"),
    [
        ("reach", r"^touch the (red|green|blue|yellow|purple) (cube|cylinder|sphere)$"),
        ("push", r"^push the \w+ (cube|cylinder) (to the (left|right)|(toward|away from) the robot)$"),
        ("pick_place", r"^put the \w+ (cube|cylinder) in the tray$"),
    ],
)
def test_instructions_are_natural_language(task: str, pattern: str) -> None:
    with make_env(task) as env:
        for seed in range(5):
            _, info = env.reset(seed=seed)
            assert re.match(pattern, info["instruction"]), info["instruction"]


def test_success_is_false_at_the_start_and_episodes_truncate() -> None:
    with make_env("reach") as env:
        env.reset(seed=0)
        assert not env.task.success()
        result = None
        for _ in range(env.task.max_steps):
            result = env.step(Action.ee_delta([0.0, 0.0, 0.0], 0.0))
        assert result is not None and result.truncated and not result.success


def test_push_moves_the_object_the_way_it_says() -> None:
    with make_env("push") as env:
        for seed in range(4):
            run_episode(env, LockstepClock(), ExpertSource(env), seed=seed)
            along, across = env.task.moved()  # type: ignore[attr-defined]
            assert along >= 0.08 and across <= 0.06


def test_pick_place_needs_a_gripper() -> None:
    with pytest.raises(ConfigError, match="needs a gripper"):
        make_env("pick_place", robot="kuka_iiwa")


def test_unknown_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="reach, push, pick_place"):
        make_env("juggle")


def pick_then(env: SimEnv, seed: int, after_lift: str) -> str:
    """The expert until the target is lifted and carried a little, then ``after_lift``: "open" (let go where
    it is) or "hold" (keep it, still); -> the task's outcome at the end of the episode."""
    obs, _ = env.reset(seed=seed)
    expert = env.expert()
    lifted_for = 0
    while True:
        action = expert.act(obs)
        if env.task.lifted:  # type: ignore[attr-defined]
            lifted_for += 1
        if lifted_for > 8:
            action = np.array([0.0, 0.0, 0.0, 0.0 if after_lift == "open" else 1.0], np.float32)
        result = env.step(Action("ee_delta", action))
        obs = result.observation
        if result.terminated or result.truncated:
            return env.task.outcome()


def test_pick_place_tells_how_an_episode_failed() -> None:
    with make_env("pick_place") as env:
        assert rollout(env, 3) and env.task.outcome() == "success"
        env.reset(seed=3)
        for _ in range(env.task.max_steps):
            result = env.step(Action("ee_delta", np.zeros(4, np.float32)))
        assert result.truncated and env.task.outcome() == "not lifted"
        assert pick_then(env, 3, "hold") == "held at the end"
        assert pick_then(env, 3, "open") == "released outside the tray"  # the tray is never where the target starts


def test_tasks_without_a_breakdown_say_success_or_not_done() -> None:
    with make_env("reach") as env:
        rollout(env, 0)
        assert env.task.outcome() == "success"
        env.reset(seed=0)
        env.step(Action("ee_delta", np.zeros(4, np.float32)))
        assert env.task.outcome() == "not done"


def test_expert_rollout_goes_on_to_the_goal_then_holds() -> None:
    """What the expert would do past an episode's end (the padding of a demonstration's last chunks): keep
    going to its last waypoint at its speed, then hold still with that waypoint's gripper."""
    from dataclasses import replace

    from sims.experts import Waypoint, WaypointExpert

    with make_env("reach") as env:
        obs, _ = env.reset(seed=0)
    goal = obs.ee_pose[:3] + np.array([0.0, 0.0, -0.035])
    expert = WaypointExpert([Waypoint(goal, gripper=1.0, tolerance_m=0.001, max_step_m=0.01)])
    actions = expert.rollout(replace(obs, gripper=0.0), 6)
    assert actions.shape == (6, 4) and np.all(actions[:, 3] == 1.0)
    np.testing.assert_allclose(actions[:4, 2], [-0.01, -0.01, -0.01, -0.005], atol=1e-6)  # 3.5 cm at 1 cm per step
    assert np.all(actions[4:, :3] == 0.0)
    assert WaypointExpert([]).rollout(obs, 0).shape == (0, 4)
