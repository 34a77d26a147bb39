"""The video-QA dataset on disk: written in shards, resumable, read back by split.

Dataset layout (``write_dataset``)::

    DATA/                       e.g. data/qa
      info.json                 image_size, renderer, splits {name: {first_seed, scenes}}, kinds, version
      {split}/scenes.jsonl      one scene per line: seed, shard, before, after (rows in the shard's
                                images), objects [{colour, shape, before, after (xyz m), pixel_before,
                                pixel_after (u, v px)}], moved, held (object index or null), arm
      {split}/shard_00000.npz   images (N, S, S, 3) uint8: each scene's frames (one row when unmoved)

Questions are not stored: they are drawn from the scene records when training or
evaluating (``questions_for``), so every epoch asks new ones about the same images.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.errors import ConfigError
from policies.qa.data.questions import KINDS
from policies.qa.data.records import Scene
from policies.qa.data.scenes import SceneConfig, SceneMaker

__all__ = ["write_dataset", "load_split", "iter_scenes", "TRAIN_SEED", "HELD_OUT_SEED", "VERSION"]

TRAIN_SEED = 0  # training scenes use seeds 0 .. scenes-1
HELD_OUT_SEED = 1_000_000  # evaluation scenes start here: layouts never seen in training
VERSION = 1


def write_dataset(
    root: str | Path,
    split: str,
    scenes: int,
    first_seed: int,
    config: SceneConfig,
    *,
    shard_size: int = 250,
    on_scene: Callable[[Scene], None] | None = None,
) -> int:
    """Render scenes ``first_seed`` .. ``first_seed + scenes - 1`` into ``root/split``; resumes after
    the last complete shard. Returns the number of scenes in the split."""
    root = Path(root)
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    info_path = root / "info.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}
    if info and (info.get("image_size") != config.image_size or info.get("version") != VERSION):
        raise ConfigError(f"{root} holds a dataset of image size {info.get('image_size')} (version {info.get('version')}); "
                          f"give another --out or delete it")
    if info and info.get("config", {}).get("p_task", 0.0) != config.p_task:
        raise ConfigError(f"{root} was made with p_task {info['config'].get('p_task', 0.0)}, not {config.p_task}: "
                          f"give the same --p-task, another --out, or delete it")
    index_path = folder / "scenes.jsonl"
    done = index_path.read_text().splitlines() if index_path.exists() else []
    if done and json.loads(done[0])["seed"] != first_seed:
        raise ConfigError(f"{folder} starts at seed {json.loads(done[0])['seed']}, not {first_seed}: give another --out")
    shard = len(list(folder.glob("shard_*.npz")))
    count = len(done)
    with SceneMaker(config) as maker:
        while count < scenes:
            batch = min(shard_size, scenes - count)
            images: list[np.ndarray] = []
            records: list[Scene] = []
            for seed in range(first_seed + count, first_seed + count + batch):
                scene, (a, b) = maker.make(seed)
                scene.shard, scene.before = shard, len(images)
                images.append(a)
                if b is not a:
                    images.append(b)
                scene.after = len(images) - 1
                records.append(scene)
                if on_scene is not None:
                    on_scene(scene)
            np.savez_compressed(folder / f"shard_{shard:05d}.npz", images=np.stack(images))
            with index_path.open("a") as f:  # written after its shard: a crash leaves no dangling lines
                f.writelines(json.dumps(s.to_json()) + "\n" for s in records)
            count += batch
            shard += 1
    info.update({"image_size": config.image_size, "renderer": config.renderer, "version": VERSION, "kinds": list(KINDS),
                 "config": asdict(config)})
    info.setdefault("splits", {})[split] = {"first_seed": first_seed, "scenes": count}
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    return count


def load_split(root: str | Path, split: str) -> tuple[list[Scene], list[np.ndarray]]:
    """-> (scenes, per-shard image arrays); a scene's frames are ``shards[s.shard][[s.before, s.after]]``.
    ``root`` may name several dataset folders, comma-separated (e.g. made by collectors in parallel):
    their scenes are joined, each must hold ``split``, and all must share one image size."""
    if isinstance(root, str) and "," in root:
        scenes: list[Scene] = []
        shards: list[np.ndarray] = []
        for one in (r.strip() for r in root.split(",") if r.strip()):
            more, more_shards = load_split(one, split)
            scenes += [replace(s, shard=s.shard + len(shards)) for s in more]
            shards += more_shards
        if len({s.shape[1:] for s in shards}) > 1:
            raise ConfigError(f"{root}: the folders hold images of different sizes; collect them with one --size")
        return scenes, shards
    folder = Path(root) / split
    index_path = folder / "scenes.jsonl"
    if not index_path.exists():
        raise ConfigError(f"no QA data at {folder}: expected {index_path} (make it with `agentrt collect-qa --out {root}`)")
    scenes = [Scene.from_json(json.loads(line)) for line in index_path.read_text().splitlines()]
    shards = []
    for i in range(max((s.shard for s in scenes), default=-1) + 1):
        with np.load(folder / f"shard_{i:05d}.npz") as z:
            shards.append(z["images"])
    return scenes, shards


def iter_scenes(first_seed: int, count: int, config: SceneConfig) -> Iterator[tuple[Scene, list[np.ndarray]]]:
    """Render scenes on the fly (evaluation on unseen seeds needs no dataset on disk)."""
    with SceneMaker(config) as maker:
        for seed in range(first_seed, first_seed + count):
            yield maker.make(seed)
