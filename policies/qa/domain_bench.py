"""Calibrate and measure the nano QA model's out-of-domain check (``policies.qa.domain``).

    agentrt qa-domain calibrate   # sim scenes -> policies/weights/nano_qa_domain.json
    agentrt qa-domain measure     # flagged share: held-out sim scenes, the four clips

Seeds: the model trained on scenes 0-9999, validated on 2000000-2000299 and was evaluated
from 1000000 (policies/NANO_QA_CARD.md); calibration uses 3000000-..., the false-alarm
measurement 3100000-..., neither seen in training. Scenes are rendered at 96 px (the
training camera) and 64 px (launch/sim_qa.yaml's live camera), with task-episode scenes
in the training data's share (30 %).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from agentrt.progress import ProgressLine
from policies.qa.domain import DomainCheck, DomainStats, frame_features

__all__ = ["sim_frames", "clip_frames", "calibrate", "measure", "videos_folder", "episode_frames", "CLIPS"]

CALIBRATION_SEED, HELD_OUT_SEED = 3_000_000, 3_100_000
SIZES = (96, 64)
P_TASK = 0.3
_REPO = Path(__file__).resolve().parents[2]
CLIPS = ("bottle-detection.mp4", "car-detection.mp4", "milk.mkv", "one-by-one-person-detection.mp4")


def videos_folder() -> Path:
    """The four clips (CC BY 4.0, not in the repository): $AGENTRT_VIDEOS, else ../shared/data/videos beside the
    checkout (or beside the folder of a worktree)."""
    if os.environ.get("AGENTRT_VIDEOS"):
        return Path(os.environ["AGENTRT_VIDEOS"])
    candidates = [root / "shared" / "data" / "videos" for root in (_REPO.parent, _REPO.parent.parent)]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def sim_frames(first_seed: int, scenes: int, size: int, label: str = "") -> list[np.ndarray]:
    """Both frames of ``scenes`` sim scenes from ``first_seed``, rendered at ``size`` px, with progress."""
    from policies.qa.data.scenes import SceneConfig, SceneMaker

    frames: list[np.ndarray] = []
    progress = ProgressLine(label or f"sim scenes at {size} px", total=scenes, unit="scenes")
    with SceneMaker(SceneConfig(image_size=size, p_task=P_TASK)) as maker:
        for i in range(scenes):
            frames += maker.make(first_seed + i)[1]
            progress.update(i + 1)
    progress.done()
    return frames


def episode_frames(episodes: int, size: int, every: int = 10) -> list[np.ndarray]:
    """The scene camera through whole task episodes (the scripted expert, as launch/sim_qa.yaml shows them:
    seeds from 100000), every ``every``-th control step, for each task in turn."""
    from sims.camera import SceneCameraConfig
    from sims.env import SimEnv, SimEnvConfig
    from sims.robot import Action, RobotConfig
    from sims.tasks import TASKS

    frames: list[np.ndarray] = []
    progress = ProgressLine(f"task episodes at {size} px", total=episodes * len(TASKS), unit="episodes")
    for t, name in enumerate(sorted(TASKS)):
        camera = SceneCameraConfig(width=size, height=size, renderer="tiny")
        env = SimEnv(SimEnvConfig(task=name, camera=camera, robot=RobotConfig(control_hz=20)))
        env.connect()
        try:
            for e in range(episodes):
                env.reset(seed=100_000 + e)
                expert, obs = env.expert(), env.robot.get_observation()
                for step in range(env.task.max_steps):
                    if step % every == 0:
                        frames.append(env.render("scene"))
                    result = env.step(Action("ee_delta", expert.act(obs)))
                    obs = result.observation
                    if result.terminated or result.truncated:
                        break
                progress.update(t * episodes + e + 1)
        finally:
            env.close()
    progress.done()
    return frames


def clip_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over a video file, RGB."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        frames = []
        # the last frame by count is not always there (milk.mkv counts one more than it holds)
        for index in np.linspace(0, max(total - 2, 0), count).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, bgr = capture.read()
            if ok:
                frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
        return frames
    finally:
        capture.release()


def calibrate(scenes: int, out: Path) -> DomainStats:
    frames = [f for size in SIZES for f in sim_frames(CALIBRATION_SEED, scenes, size)]
    features = np.stack([frame_features(f) for f in frames])
    stats = DomainStats.fit(features, calibration={
        "seeds": f"{CALIBRATION_SEED}-{CALIBRATION_SEED + scenes - 1}", "sizes_px": list(SIZES), "p_task": P_TASK,
        "command": f"agentrt qa-domain calibrate --scenes {scenes}"})
    stats.save(out)
    return stats


def _row(name: str, frames: list[np.ndarray], stats: DomainStats) -> str:
    distances = stats.distances(np.stack([frame_features(f) for f in frames]))
    check, warned_at = DomainCheck(stats), 0
    for i, frame in enumerate(frames):
        if check.update(frame) and not warned_at:
            warned_at = i + 1
    flagged = int((distances > stats.threshold).sum())
    return (f"| {name} | {len(frames)} | {flagged} ({100 * flagged / len(frames):.1f} %) | "
            f"{np.median(distances):.1f} | {distances.min():.1f}-{distances.max():.1f} | "
            f"{f'after frame {warned_at}' if warned_at else 'never'} |")


def measure(scenes: int, clip_count: int, stats: DomainStats, videos: Path) -> list[str]:
    rows = ["| frames | n | flagged | median distance | range | stream warned |", "|---|---|---|---|---|---|"]
    for size in SIZES:
        held_out = sim_frames(HELD_OUT_SEED, scenes, size, f"held-out sim scenes at {size} px")
        rows.append(_row(f"held-out sim, {size} px (seeds {HELD_OUT_SEED}-{HELD_OUT_SEED + scenes - 1})",
                         held_out, stats))
    rows.append(_row("sim task episodes, 64 px (the expert, 5 per task, every 5th step)",
                     episode_frames(5, 64, every=5), stats))
    for clip in CLIPS:
        path = videos / clip
        if not path.exists():
            rows.append(f"| {clip} | absent ({path}) | | | | |")
            continue
        print(f"reading {clip}...", file=sys.stderr, flush=True)
        rows.append(_row(clip, clip_frames(path, clip_count), stats))
    return rows
