"""A LeRobot dataset as the nano VLA's episodes: `agentrt train --data lerobot:PATH`.

The nano VLA reads one camera, a 4-value state (tool point x, y, z in metres, gripper 0..1) and
acts in 4 values (dx, dy, dz in metres per step, gripper). Keys are found by name: the camera
(``--camera``: ``scene``, ``laptop`` or the full ``observation.images.laptop``), the state
(``--map-state``, default ``observation.state``) and the action (``--map-action``, default
``action``). A dataset recorded on a real arm in joint space (an SO-100's six ``*.pos`` values)
does not fit: the error says to convert to end-effector steps first (forward kinematics) and
which flag then picks the converted feature. Frames are brought to the model's size as decoded
(`agentrt.pixels.fit`, centre crop). ``observation.target`` / ``observation.goal``, which
``collect --format lerobot`` writes for the auxiliary keypoint loss, are used when present;
a dataset without them trains without that loss.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentrt.errors import ConfigError
from policies.lerobot.reader import KEY_FLAGS, LeRobotReader

__all__ = ["LeRobotKeys", "LEROBOT_PREFIX", "lerobot_path", "nano_info", "nano_episodes", "NANO_DIMS"]

LEROBOT_PREFIX = "lerobot:"
NANO_DIMS = {"state": ("x", "y", "z", "gripper"), "action": ("dx", "dy", "dz", "gripper")}
PRIVILEGED = ("observation.target", "observation.goal")  # written by collect --format lerobot; optional here
DEFAULT_IMAGE_SIZE = 64  # the model's side for a camera whose frames are not square


@dataclass
class LeRobotKeys:
    """Which features of a LeRobot dataset feed the model; empty: found by name (see the module)."""

    camera: str = ""
    state: str = ""
    action: str = ""


def lerobot_path(data_dir: str) -> str | None:
    """``lerobot:PATH`` -> PATH; anything else -> None (an agentrt npz dataset)."""
    return data_dir[len(LEROBOT_PREFIX):] if data_dir.startswith(LEROBOT_PREFIX) else None


def _resolve(reader: LeRobotReader, keys: LeRobotKeys) -> tuple[str, str, str]:
    """(camera, state, action) feature keys, each checked against what the nano VLA takes."""
    camera = reader.feature_key("camera", keys.camera)
    # the action first: what a policy outputs decides whether a dataset can train it at all
    chosen = {"action": reader.feature_key("action", keys.action), "state": reader.feature_key("state", keys.state)}
    for kind, key in chosen.items():
        feature = reader.features[key]
        shape, names = list(feature["shape"]), list(feature.get("names") or [])
        if shape != [len(NANO_DIMS[kind])]:
            joints = any(str(n).endswith((".pos", "_joint", ".joint")) for n in names)
            why = (" (joint space: convert each frame to end-effector steps with the arm's forward kinematics, "
                   "store them as a 4-value feature") if joints else " (store a 4-value feature"
            raise ConfigError(f"{reader.root}: {key!r} has {shape} values{': ' + ', '.join(map(str, names)) if names else ''}; "
                              f"the nano VLA's {kind} is 4 ({', '.join(NANO_DIMS[kind])}){why}, then pass "
                              f"{KEY_FLAGS[kind]} KEY)")
    return camera, chosen["state"], chosen["action"]


def nano_info(path: str, keys: LeRobotKeys) -> dict[str, Any]:
    """What `model_config` reads of a dataset: the image size (a square camera's side) and the robot."""
    reader = LeRobotReader(path)
    camera, _, _ = _resolve(reader, keys)
    h, w = reader.features[camera]["shape"][:2]
    return {"image_size": int(h) if h == w else DEFAULT_IMAGE_SIZE, "robot": reader.robot_type,
            "fps": reader.fps, "total_episodes": reader.info.get("total_episodes")}


def nano_episodes(path: str, keys: LeRobotKeys, *, images: bool, tasks: tuple[str, ...] | None,
                  image_size: int = 0) -> Iterator[Any]:
    """The dataset's episodes as `policies.vla.data.Episode` (every frame an image step); ``tasks``
    matches the task string or, for ours, the sim task's name."""
    from agentrt.pixels import fit
    from policies.vla.data import Episode

    reader = LeRobotReader(path)
    camera, state, action = _resolve(reader, keys)
    privileged = [k for k in PRIVILEGED if k in reader.features]

    def keep(row: dict[str, Any]) -> bool:
        return tasks is None or bool({*row.get("tasks", []), row.get("agentrt_task")} & set(tasks))

    def transform(image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(fit(image, image_size)) if image_size else image

    for ep in reader.episodes([state, action, *privileged], [camera] if images else [], transform=transform, keep=keep):
        T = ep.length
        zeros = np.zeros((T, 3), np.float32)
        yield Episode(
            task=str(ep.extra.get("agentrt_task") or ep.task), seed=int(ep.extra.get("agentrt_seed", ep.index)),
            instruction=ep.task, images=ep.images[camera] if images else np.zeros((0,), np.uint8),
            states=ep.values[state].astype(np.float32), actions=ep.values[action].astype(np.float32),
            image_steps=np.arange(T, dtype=np.int64),
            targets=ep.values["observation.target"].astype(np.float32) if "observation.target" in privileged else zeros,
            goals=ep.values["observation.goal"].astype(np.float32) if "observation.goal" in privileged else zeros,
        )
