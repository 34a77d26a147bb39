"""Demonstrations from the scripted experts, in a LeRobot-shaped folder.

Layout (LeRobot v2 names; arrays in ``.npz`` instead of parquet + MP4, so no
extra dependency is needed)::

    DATASET/
      meta/info.json        fps, image size, robot, features (name -> dtype, shape), totals, seeds, tasks
      meta/episodes.jsonl   one line per episode: episode_index, task, seed, instruction, length, success
      meta/stats.json       per feature: min, max, mean, std, q01, q99 (action and observation.state)
      data/episode_000000.npz
         observation.images.scene  (T_img, H, W, 3) uint8  scene camera at the steps in image_frame_index
         observation.images.wrist  (T_img, H, W, 3) uint8  wrist camera at the same steps (``--wrist`` only)
         image_frame_index         (T_img,) int64         the steps that have an image (every ``image_every``-th)
         observation.state         (T, 4) float32      tool point xyz (m) + gripper (0 open .. 1 closed)
         observation.target        (T, 3) float32      the target object's position (m): privileged, for an
                                                        auxiliary training loss only, never a policy input
         observation.goal          (T, 3) float32      where the target must go (the tray's centre), zeros when
                                                        the task has no such place: privileged, like the target
         action                    (T, 4) float32      ee_delta dx, dy, dz (m/step) + gripper command
         action.after_end          (A, 4) float32      the expert's next A actions had the episode gone on past its
                                                        end (``WaypointExpert.rollout``): pad the last chunks
         frame_index, timestamp    (T,)                step index, seconds at the control rate

Episodes are drawn from seeded scenes (``seed``, ``seed + 1``, ...). With
``noise_m`` > 0 a share of episodes execute the expert's action plus Gaussian
noise while recording the clean expert action (DART), so a policy sees how
to recover from its own small errors; an episode's noise comes from its task and seed alone
(``episode_rng``), so a resumed or parallel collection records what one run would. Only successful
episodes are kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.errors import ConfigError
from policies.lerobot.layout import DATA_FORMATS
from policies.lerobot.nano import LeRobotKeys, lerobot_path, nano_episodes, nano_info
from policies.sweep import SweepConfig
from policies.vla.state import robot_state  # not from the model: a collection worker needs no torch
from sims.tasks import TASK_NAMES

__all__ = ["CollectConfig", "collect", "Episode", "load_episodes", "load_info", "action_stats", "data_robot", "STATE_DIMS",
           "ACTION_DIMS", "COLLECT_ROBOT", "AFTER_END_STEPS", "chunk_padding"]

log = logging.getLogger(__name__)

STATE_DIMS = 4  # x, y, z (m), gripper
AFTER_END_STEPS = 16  # expert actions recorded past an episode's end: two chunks of the nano VLA's 8
ACTION_DIMS = 4  # dx, dy, dz (m / step), gripper
COLLECT_ROBOT = "panda"  # the arm the scripted experts drive; info.json names it, and so do weights trained on it


@dataclass
class CollectConfig:
    tasks: tuple[str, ...] = ("reach",)
    episodes: int = 100  # per task
    seed: int = 0  # episode i of a task uses seed + i
    image_size: int = 64
    control_hz: float = 20.0
    noise_m: float = 0.003  # DART: std of the noise added to executed xyz steps
    noise_share: float = 0.5  # share of episodes with noise
    renderer: str = "tiny"
    image_every: int = 2  # render (and keep a training sample) every n-th step; actions are kept for every step
    wrist: bool = False  # also record the wrist camera (doubles the rendering cost; models with wrist=true take it)
    out_dir: str = "data/nano"
    format: str = "npz"  # "npz" (below) or "lerobot" (a LeRobotDataset v3.0: every frame, MP4 per camera)

    def __post_init__(self) -> None:
        self.tasks = tuple(t.replace("-", "_") for t in self.tasks)
        bad = [t for t in self.tasks if t not in TASK_NAMES]
        if bad or not self.tasks:
            raise ConfigError(f"CollectConfig.tasks: expected some of {', '.join(TASK_NAMES)}, got {list(self.tasks)}")
        if self.episodes < 1:
            raise ConfigError(f"CollectConfig.episodes: expected >= 1, got {self.episodes}")
        if not 16 <= self.image_size <= 256:
            raise ConfigError(f"CollectConfig.image_size: expected 16..256 pixels, got {self.image_size}")
        if self.noise_m < 0 or not 0 <= self.noise_share <= 1:
            raise ConfigError(f"CollectConfig: expected noise_m >= 0 and noise_share in [0, 1], got {self.noise_m}, {self.noise_share}")
        if self.format not in DATA_FORMATS:
            raise ConfigError(f"CollectConfig.format: expected one of {', '.join(DATA_FORMATS)}, got {self.format!r}")
        if self.format == "lerobot" and (self.image_every != 1 or self.control_hz != int(self.control_hz)):
            raise ConfigError(f"CollectConfig: a LeRobot dataset keeps every frame at a whole fps; got image_every "
                              f"{self.image_every}, control_hz {self.control_hz} (use image_every=1)")


@dataclass
class Episode:
    task: str
    seed: int
    instruction: str
    images: np.ndarray  # (T_img, H, W, 3) uint8
    states: np.ndarray  # (T, 4) float32
    actions: np.ndarray  # (T, 4) float32
    image_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (T_img,) steps with an image
    targets: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))  # (T, 3) privileged
    goals: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))  # (T, 3) privileged, zeros: none
    wrist_images: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.uint8))  # (T_img, H, W, 3) or empty
    # (A, 4): the expert's actions past the end (empty: a dataset from before they were recorded, or LeRobot)
    after_end: np.ndarray = field(default_factory=lambda: np.zeros((0, ACTION_DIMS), np.float32))
    success: bool = True
    meta: dict[str, object] = field(default_factory=dict)


def record_episode(
    env: object, seed: int, rng: np.random.Generator, noise_m: float, image_every: int = 1, wrist: bool = False
) -> Episode:
    """One expert episode on ``env`` (a ``sims.SimEnv``), rendering the scene (and wrist) camera every ``image_every`` steps."""
    from sims.robot import Action

    obs, info = env.reset(seed=seed)  # type: ignore[attr-defined]
    expert = env.expert()  # type: ignore[attr-defined]
    images: list[np.ndarray] = []
    image_steps: list[int] = []
    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    goals: list[np.ndarray] = []
    wrist_images: list[np.ndarray] = []
    success = False
    while True:
        action = expert.act(obs)
        if len(actions) % image_every == 0:
            image_steps.append(len(actions))
            images.append(env.render("scene"))  # type: ignore[attr-defined]
            if wrist:
                wrist_images.append(env.render("wrist"))  # type: ignore[attr-defined]
        targets.append(env.task.target_position().astype(np.float32))  # type: ignore[attr-defined]
        goal = env.task.goal_position()  # type: ignore[attr-defined]
        goals.append(np.zeros(3, np.float32) if goal is None else np.asarray(goal, np.float32))
        states.append(robot_state(obs.ee_pose, obs.gripper))
        actions.append(np.asarray(action, dtype=np.float32))
        executed = action.copy()
        if noise_m > 0:
            executed[:3] += rng.normal(0.0, noise_m, 3).astype(np.float32)
        result = env.step(Action("ee_delta", executed))  # type: ignore[attr-defined]
        obs = result.observation
        if result.terminated or result.truncated:
            success = result.success
            break
    after_end = expert.rollout(obs, AFTER_END_STEPS)
    return Episode(
        task=env.task.name,  # type: ignore[attr-defined]
        seed=seed,
        instruction=info["instruction"],
        images=np.stack(images),
        states=np.stack(states),
        actions=np.stack(actions),
        success=success,
        image_steps=np.asarray(image_steps, dtype=np.int64),
        targets=np.stack(targets),
        goals=np.stack(goals),
        wrist_images=np.stack(wrist_images) if wrist_images else np.zeros((0,), np.uint8),
        after_end=after_end,
    )


def collect(config: CollectConfig, on_episode: Callable[[Episode], None] | None = None,
            sweep_config: SweepConfig | None = None) -> dict[str, object]:
    """Record expert episodes for every task into ``config.out_dir``; returns the info dict.

    Appends to an existing dataset of the same image size (episode indices go on), so a
    collection can be resumed or widened to more tasks. ``format="lerobot"``: a LeRobotDataset
    v3.0 instead (`policies.lerobot.collect`). ``sweep_config``: the workers that record (`policies.sweep`);
    the episodes are written in (task, seed) order all the same, so the dataset is the one a single process writes.
    """
    if config.format == "lerobot":
        from policies.lerobot.collect import collect_lerobot

        return collect_lerobot(config, on_episode, sweep_config)
    root = Path(config.out_dir)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    index_path = root / "meta" / "episodes.jsonl"
    done = [json.loads(line) for line in index_path.read_text().splitlines()] if index_path.exists() else []
    next_index = max((d["episode_index"] for d in done), default=-1) + 1

    def save(ep: Episode) -> None:
        nonlocal next_index
        _write_episode(root, next_index, ep, config.control_hz)
        with index_path.open("a") as f:
            f.write(json.dumps({
                "episode_index": next_index, "task": ep.task, "seed": ep.seed, "instruction": ep.instruction,
                "length": len(ep.actions), "success": ep.success, **ep.meta,
            }) + "\n")
        next_index += 1

    record_all(config, {(d["task"], d["seed"]) for d in done}, save, on_episode, sweep_config)
    return write_meta(root, config)


def record_all(config: CollectConfig, seen: set[tuple[str, int]], save: Callable[[Episode], None],
               on_episode: Callable[[Episode], None] | None = None, sweep_config: SweepConfig | None = None) -> None:
    """Record every task's episodes (seeds ``config.seed`` ..), skipping the (task, seed) pairs in ``seen``;
    ``save`` gets the successful ones, ``on_episode`` every one (progress). Both get them in (task, seed)
    order whatever ``sweep_config``'s workers (``policies.sweep``), so a dataset does not depend on them."""
    from policies.sweep import InOrder, sweep

    jobs = [(task, config.seed + i) for task in config.tasks for i in range(config.episodes)
            if (task, config.seed + i) not in seen]

    def deliver(_index: int, ep: Episode) -> None:
        if ep.success:
            save(ep)
        if on_episode is not None:
            on_episode(ep)

    sweep(sweep_config or SweepConfig(), CollectWorkerSpec(config), jobs, InOrder(deliver))


def episode_rng(task: str, seed: int) -> np.random.Generator:
    """The noise of one episode: from its task and seed alone, so an episode is the same whichever worker,
    and whatever episodes before it, recorded it (a resumed or parallel collection equals a plain one)."""
    return np.random.default_rng((TASK_NAMES.index(task), seed, 7919))


@dataclass(frozen=True)
class CollectWorkerSpec:
    """A sweep worker (`policies.sweep`) recording (task, seed) episodes for ``config``."""

    config: CollectConfig

    def open(self, threads: int) -> CollectWorker:
        return CollectWorker(self.config)


class CollectWorker:
    """A simulator per task, opened when first needed; ``run((task, seed))`` records that episode."""

    def __init__(self, config: CollectConfig) -> None:
        self.config = config
        self.envs: dict[str, Any] = {}

    def run(self, job: tuple[str, int]) -> Episode:
        from sims.camera import SceneCameraConfig
        from sims.env import SimEnv, SimEnvConfig
        from sims.robot import RobotConfig

        task, seed = job
        c = self.config
        if task not in self.envs:
            self.envs[task] = SimEnv(SimEnvConfig(
                task=task, robot=RobotConfig(robot=COLLECT_ROBOT, control_hz=c.control_hz),
                camera=SceneCameraConfig(width=c.image_size, height=c.image_size, renderer=c.renderer)))
        rng = episode_rng(task, seed)
        noise = c.noise_m if rng.random() < c.noise_share else 0.0
        ep = record_episode(self.envs[task], seed, rng, noise, c.image_every, c.wrist)
        ep.meta = {"noise_m": noise}
        return ep

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()


def _write_episode(root: Path, index: int, ep: Episode, fps: float) -> None:
    T = len(ep.actions)
    arrays: dict[str, np.ndarray] = {
        "observation.images.scene": ep.images,
        "image_frame_index": ep.image_steps,
        "observation.state": ep.states,
        "observation.target": ep.targets,
        "observation.goal": ep.goals,
        "action": ep.actions,
        "action.after_end": ep.after_end,
        "frame_index": np.arange(T, dtype=np.int64),
        "timestamp": (np.arange(T) / fps).astype(np.float32),
    }
    if len(ep.wrist_images):
        arrays["observation.images.wrist"] = ep.wrist_images
    np.savez_compressed(root / "data" / f"episode_{index:06d}.npz", **arrays)  # type: ignore[arg-type]


def write_meta(root: Path, config: CollectConfig) -> dict[str, object]:
    """Recompute meta/info.json and meta/stats.json from the episodes on disk."""
    episodes = list(load_episodes(root, images=False))
    actions = np.concatenate([e.actions for e in episodes]) if episodes else np.zeros((0, ACTION_DIMS), np.float32)
    states = np.concatenate([e.states for e in episodes]) if episodes else np.zeros((0, STATE_DIMS), np.float32)
    stats = {"action": _stats(actions), "observation.state": _stats(states)}
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=1))
    tasks = sorted({e.task for e in episodes})
    info: dict[str, object] = {
        "codebase": "agentrt policies.vla.data (LeRobot v2 layout, npz arrays)",
        "fps": config.control_hz,
        "image_size": config.image_size,
        "robot": COLLECT_ROBOT,
        "total_episodes": len(episodes),
        "total_frames": int(len(actions)),
        "tasks": tasks,
        "episodes_per_task": {t: sum(e.task == t for e in episodes) for t in tasks},
        "features": {
            "observation.images.scene": {"dtype": "uint8", "shape": [config.image_size, config.image_size, 3]},
            "image_frame_index": {"dtype": "int64", "shape": [1]},
            "observation.state": {"dtype": "float32", "shape": [STATE_DIMS], "names": ["x", "y", "z", "gripper"]},
            "observation.target": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"], "privileged": True},
            "observation.goal": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"], "privileged": True},
            "action": {"dtype": "float32", "shape": [ACTION_DIMS], "names": ["dx", "dy", "dz", "gripper"]},
            "action.after_end": {"dtype": "float32", "shape": [ACTION_DIMS], "per_episode": AFTER_END_STEPS},
        },
        "image_every": config.image_every,
        "wrist": config.wrist,
        "noise_m": config.noise_m,
        "noise_share": config.noise_share,
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=1))
    return info


def _stats(x: np.ndarray) -> dict[str, list[float]]:
    if len(x) == 0:
        return {}
    return {
        "min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(), "std": x.std(0).tolist(),
        "q01": np.quantile(x, 0.01, axis=0).tolist(), "q99": np.quantile(x, 0.99, axis=0).tolist(),
    }


def load_info(root: str | Path, keys: LeRobotKeys | None = None) -> dict[str, object]:
    """A dataset's info.json; for ``lerobot:PATH``, what training reads of it (image size, robot)."""
    lerobot = lerobot_path(str(root))
    if lerobot is not None:
        return nano_info(lerobot, keys or LeRobotKeys())
    path = Path(root) / "meta" / "info.json"
    if not path.exists():
        raise ConfigError(f"no dataset at {root}: expected {path} (make one with `agentrt collect`)")
    info = dict(json.loads(path.read_text()))
    _not_lerobot(root, info)
    return info


def _not_lerobot(root: str | Path, info: dict[str, object]) -> None:
    """One line for a LeRobot dataset named without its ``lerobot:`` prefix."""
    if "codebase_version" in info:
        raise ConfigError(f"{root} is a LeRobot {info['codebase_version']} dataset: pass it as lerobot:{root}")


def data_robot(data_dir: str, keys: LeRobotKeys | None = None) -> str:
    """The robot that recorded a dataset (or several, comma-separated, which must agree). A dataset whose
    info.json names none is from before it did, when collections drove only ``COLLECT_ROBOT``."""
    robots = {str(load_info(root, keys).get("robot", COLLECT_ROBOT)) for root in data_dir.split(",")}
    if len(robots) > 1:
        raise ConfigError(f"{data_dir}: the datasets were recorded on different robots ({', '.join(sorted(robots))}); "
                          "train one model per robot")
    return robots.pop()


def load_episodes(root: str | Path, *, images: bool = True, tasks: tuple[str, ...] | None = None,
                  keys: LeRobotKeys | None = None, image_size: int = 0) -> Iterator[Episode]:
    """The episodes of a dataset folder, in index order. ``lerobot:PATH``: a LeRobotDataset v3.0, its
    features chosen by ``keys`` and its frames brought to ``image_size`` (0: as recorded)."""
    lerobot = lerobot_path(str(root))
    if lerobot is not None:
        yield from nano_episodes(lerobot, keys or LeRobotKeys(), images=images, tasks=tasks, image_size=image_size)
        return
    root = Path(root)
    if (root / "meta" / "info.json").exists():
        load_info(root)  # a LeRobot folder given without lerobot: is one line
    index_path = root / "meta" / "episodes.jsonl"
    if not index_path.exists():
        raise ConfigError(f"no dataset at {root}: expected {index_path} (make one with `agentrt collect`)")
    for line in index_path.read_text().splitlines():
        d = json.loads(line)
        if tasks is not None and d["task"] not in tasks:
            continue
        with np.load(root / "data" / f"episode_{d['episode_index']:06d}.npz") as z:
            yield Episode(
                task=d["task"], seed=d["seed"], instruction=d["instruction"],
                images=z["observation.images.scene"] if images else np.zeros((0,), np.uint8),
                states=z["observation.state"], actions=z["action"], success=d["success"],
                image_steps=z["image_frame_index"] if "image_frame_index" in z else np.arange(len(z["action"])),
                targets=z["observation.target"] if "observation.target" in z else np.zeros((len(z["action"]), 3), np.float32),
                goals=z["observation.goal"] if "observation.goal" in z else np.zeros((len(z["action"]), 3), np.float32),
                wrist_images=z["observation.images.wrist"] if images and "observation.images.wrist" in z else np.zeros((0,), np.uint8),
                after_end=z["action.after_end"] if "action.after_end" in z else np.zeros((0, ACTION_DIMS), np.float32),
            )


def action_stats(root: str | Path) -> dict[str, list[float]]:
    path = Path(root) / "meta" / "stats.json"
    return dict(json.loads(path.read_text())["action"])


def chunk_padding(ep: Episode, steps: int) -> np.ndarray:
    """(steps, 4): what follows an episode's last action in its last chunks: the expert's actions past the end
    where recorded, then holding still with the last gripper command."""
    tail = ep.after_end[:steps]
    pad = np.zeros((steps, ep.actions.shape[1]), np.float32)
    pad[:, -1] = (tail if len(tail) else ep.actions)[-1, -1]
    pad[: len(tail)] = tail
    return pad
