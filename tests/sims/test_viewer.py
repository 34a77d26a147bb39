"""The viewer camera: watchable episode videos from a separate process, with the episode unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentrt.errors import ConfigError
from sims.camera import SceneCameraConfig
from sims.clock import LockstepClock
from sims.env import SimEnv, SimEnvConfig
from sims.loop import EpisodeResult, ExpertSource, run_episode
from sims.viewer import Viewer, ViewerConfig, apply_snapshot, scene_snapshot


def mp4_frames(path: str | Path) -> list[np.ndarray]:
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def episode(task: str, seed: int, viewer: Viewer | None, path: Path) -> tuple[EpisodeResult, np.ndarray, list[int]]:
    """One lockstep expert episode: its result, its actions and the policy frames' checksums."""
    seen: list[int] = []
    with SimEnv(SimEnvConfig(task=task, camera=SceneCameraConfig(width=64, height=64, renderer="tiny"))) as env:
        source = ExpertSource(env)
        video = viewer.episode(str(path), fps=10.0) if viewer else None
        result = run_episode(env, LockstepClock(), source, seed=seed, frame_every=2,
                             on_frame=lambda image: seen.append(int(image.astype(np.int64).sum())), video=video)
        if video is not None:
            video.close()
    return result, np.stack(source.actions), seen


@pytest.mark.parametrize("process", [True, False], ids=["separate process", "in the loop"])
def test_the_viewer_changes_nothing_the_policy_sees_and_writes_a_watchable_video(tmp_path: Path,
                                                                                 process: bool) -> None:
    base, base_actions, base_frames = episode("push", 3, None, tmp_path / "none.mp4")
    with Viewer(ViewerConfig(process=process)) as viewer:
        result, actions, frames = episode("push", 3, viewer, tmp_path / "push.mp4")
    assert (result.success, result.steps) == (base.success, base.steps)
    np.testing.assert_array_equal(actions, base_actions)  # bit for bit: the viewer only reads the scene
    assert frames == base_frames  # the policy camera's images are the same
    expected = base.steps // 2 + 1  # a frame at step 0 and every 2nd step
    assert viewer.written == [(str(tmp_path / "push.mp4"), expected)] and viewer.dropped == 0
    video = mp4_frames(tmp_path / "push.mp4")
    assert len(video) == expected and video[0].shape == (288, 384, 3)


def test_the_viewer_shows_the_scene_the_loop_has(tmp_path: Path) -> None:
    """A snapshot applied to a world rebuilt from the same task and seed renders as the original does."""
    camera = SceneCameraConfig(width=96, height=72, renderer="tiny")
    with SimEnv(SimEnvConfig(task="pick_place", camera=camera)) as env, \
            SimEnv(SimEnvConfig(task="pick_place", camera=camera)) as copy:
        env.reset(seed=5)
        copy.reset(seed=5)
        source = ExpertSource(env)
        run_episode(env, LockstepClock(), source, seed=5)  # objects moved, the gripper closed
        assert not np.array_equal(env.render(), copy.render())
        apply_snapshot(copy.world, scene_snapshot(env.world))
        np.testing.assert_array_equal(env.render(), copy.render())


def test_viewer_config_and_a_missing_seed_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="64..1920"):
        ViewerConfig(width=32)
    with Viewer() as viewer, SimEnv(SimEnvConfig(camera=SceneCameraConfig(renderer="tiny"))) as env:
        env.reset(seed=0)
        with pytest.raises(ConfigError, match="needs the episode's seed"):
            viewer.episode(str(tmp_path / "x.mp4"), fps=10.0).begin(env, None)
