"""Cameras: both views, any resolution, both renderers, several sims in one process."""

from __future__ import annotations

import numpy as np
import pytest

from agentrt.errors import ConfigError
from sims.camera import SceneCameraConfig, project_scene
from sims.env import SimEnv, SimEnvConfig
from sims.robot import Action


@pytest.mark.parametrize(("width", "height"), [(64, 48), (96, 96)])
def test_scene_and_wrist_images(width: int, height: int) -> None:
    config = SimEnvConfig(task="reach", camera=SceneCameraConfig(width=width, height=height, renderer="tiny"))
    with SimEnv(config) as env:
        env.reset(seed=1)
        assert env.renderer == "tiny"
        scene, wrist = env.render("scene"), env.render("wrist")
    for image in (scene, wrist):
        assert image.shape == (height, width, 3) and image.dtype == np.uint8
        assert image.std() > 1.0  # not a blank image
    assert not np.array_equal(scene, wrist)


def test_the_named_object_is_visible_in_the_scene_camera() -> None:
    with SimEnv(SimEnvConfig(task="reach", camera=SceneCameraConfig(width=96, height=96, renderer="tiny"))) as env:
        for seed in range(3):
            env.reset(seed=seed)
            target = env.task.target
            assert target is not None
            with_target = env.render()
            env.world.p.removeBody(target.body, physicsClientId=env.world.client)
            without = env.render()
            changed = np.any(with_target != without, axis=2)
            assert changed.sum() >= 9, f"seed {seed}: the {target.name} covers {changed.sum()} pixels"


@pytest.mark.parametrize("width", [64, 96])
def test_project_scene_lands_on_the_objects_the_camera_renders(width: int) -> None:
    """The numpy projection (used to label keypoints in training) agrees with PyBullet's rendering:
    removing an object changes the pixel its centre projects to."""
    with SimEnv(SimEnvConfig(task="reach", camera=SceneCameraConfig(width=width, height=width, renderer="tiny"))) as env:
        for seed in range(2):
            env.reset(seed=seed)
            for obj in list(env.task.objects):
                u, v = project_scene(np.array(env.world.position(obj.body)))
                col, row = int((u + 1) / 2 * width), int((v + 1) / 2 * width)
                before = env.render()
                env.world.p.removeBody(obj.body, physicsClientId=env.world.client)
                after = env.render()
                assert np.any(before[row, col] != after[row, col]), f"seed {seed}: {obj.name} not at ({col}, {row})"


def test_auto_renderer_reports_what_it_uses() -> None:
    with SimEnv(SimEnvConfig(task="reach", camera=SceneCameraConfig(width=32, height=32, renderer="auto"))) as env:
        env.reset(seed=0)
        assert env.renderer in ("egl", "tiny")
        assert env.render().shape == (32, 32, 3)


def test_rendering_does_not_change_the_trajectory() -> None:
    def run(render: bool) -> np.ndarray:
        with SimEnv(SimEnvConfig(task="reach", camera=SceneCameraConfig(width=32, height=32, renderer="tiny"))) as env:
            obs, _ = env.reset(seed=2)
            expert = env.expert()
            for _ in range(15):
                if render:
                    env.render()
                obs = env.step(Action("ee_delta", expert.act(obs))).observation
            return obs.joint_positions

    assert np.array_equal(run(False), run(True))


def test_two_sims_render_in_one_process() -> None:
    config = SimEnvConfig(task="reach", camera=SceneCameraConfig(width=32, height=32, renderer="tiny"))
    with SimEnv(config) as a, SimEnv(config) as b:
        a.reset(seed=0)
        b.reset(seed=1)
        assert not np.array_equal(a.render(), b.render())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"width": 4}, "width"), ({"height": 5000}, "height"), ({"renderer": "vulkan"}, "renderer"), ({"near_m": 0}, "near_m")],
)
def test_camera_config_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SceneCameraConfig(**kwargs)
