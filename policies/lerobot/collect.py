"""`agentrt collect --format lerobot`: the scripted experts' demonstrations as a LeRobotDataset v3.0.

Every control step is a frame (``image_every`` is 1): the scene camera (and the wrist camera with
``wrist``) in one MP4 per camera, ``observation.state`` (x, y, z, gripper), ``action`` (dx, dy, dz,
gripper) and the privileged ``observation.target`` / ``observation.goal`` (used only by the auxiliary
keypoint loss, never a policy input) in the data parquet; the task string is the episode's
instruction. Each episode's row in meta/episodes also keeps ``agentrt_task``, ``agentrt_seed`` and
``agentrt_noise_m``: a second run with the same folder skips the (task, seed) pairs already there
and appends the rest, so an interrupted collection resumes. What was recorded before an
interruption (Ctrl-C, an error) is written before the error goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from policies.lerobot.writer import LeRobotWriter
from policies.sweep import SweepConfig
from policies.vla.data import ACTION_DIMS, COLLECT_ROBOT, STATE_DIMS, CollectConfig, Episode, record_all

__all__ = ["collect_lerobot", "collect_features"]

_IMAGE_NAMES = ["height", "width", "channels"]


def collect_features(config: CollectConfig) -> dict[str, dict[str, Any]]:
    """The features a collection writes (besides the index features)."""
    side = config.image_size
    cameras = ["scene", "wrist"] if config.wrist else ["scene"]
    features: dict[str, dict[str, Any]] = {
        f"observation.images.{c}": {"dtype": "video", "shape": [side, side, 3], "names": _IMAGE_NAMES} for c in cameras
    }
    features.update({
        "observation.state": {"dtype": "float32", "shape": [STATE_DIMS], "names": ["x", "y", "z", "gripper"]},
        "observation.target": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]},
        "observation.goal": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]},
        "action": {"dtype": "float32", "shape": [ACTION_DIMS], "names": ["dx", "dy", "dz", "gripper"]},
    })
    return features


def collect_lerobot(config: CollectConfig, on_episode: Callable[[Episode], None] | None = None,
                    sweep_config: SweepConfig | None = None) -> dict[str, object]:
    """Record into (or append to) the LeRobot dataset at ``config.out_dir``; returns its info.json plus
    ``episodes_per_task`` (the sim tasks' counts, for the summary line). ``sweep_config``: the workers that
    record (`policies.sweep`); the writer appends their episodes in (task, seed) order, as one process would."""
    writer = LeRobotWriter(Path(config.out_dir), fps=int(config.control_hz), robot_type=COLLECT_ROBOT,
                           features=collect_features(config))
    seen = {(str(r.get("agentrt_task")), int(r.get("agentrt_seed", -1))) for r in writer.written}

    def save(ep: Episode) -> None:
        values = {"observation.images.scene": ep.images, "observation.state": ep.states,
                  "observation.target": ep.targets, "observation.goal": ep.goals, "action": ep.actions}
        if config.wrist:
            values["observation.images.wrist"] = ep.wrist_images
        writer.add_episode(ep.instruction, values, extra={"agentrt_task": ep.task, "agentrt_seed": ep.seed,
                                                          "agentrt_noise_m": float(str(ep.meta.get("noise_m", 0.0)))})

    try:
        record_all(config, seen, save, on_episode, sweep_config)
    finally:
        info = writer.close()
    counts = Counter(str(r.get("agentrt_task")) for r in writer.written)
    return {**info, "episodes_per_task": dict(sorted(counts.items()))}
