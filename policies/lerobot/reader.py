"""`LeRobotReader`: a LeRobotDataset v3.0 folder (ours, or one recorded with LeRobot) as episodes of arrays.

    reader = LeRobotReader("data/lr")
    camera = reader.feature_key("camera", "laptop")          # -> "observation.images.laptop", or one line naming the keys
    for ep in reader.episodes([reader.feature_key("state", "")], [camera]):
        ep.task, ep.values["observation.state"], ep.images[camera]      # str, (T, D) float, (T, H, W, 3) uint8

Rows come from ``data/*/*.parquet`` (each episode's ``dataset_from_index`` .. ``dataset_to_index``);
frames from the camera's MP4, decoded once per file and picked at ``from_timestamp`` + the frame's
timestamp, as LeRobot does (or, for a dataset recorded without videos, the PNG in each row).
What cannot be read gives one line: not a dataset, a v2.x dataset (LeRobot's converter makes it
v3.0), a missing key (with the keys there are and the flag to pass).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.errors import ConfigError
from policies.lerobot.layout import CODEBASE_VERSION, INFO_PATH, import_arrow
from policies.lerobot.video import decode_video, frames_at
from policies.lerobot.writer import episode_rows, read_tasks

__all__ = ["LeRobotReader", "RecordedEpisode", "KEY_FLAGS", "CONVERT_V21"]

CONVERT_V21 = "python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=REPO_ID"  # LeRobot's own converter
KEY_FLAGS = {"camera": "--camera", "state": "--map-state", "action": "--map-action"}  # what a user passes to choose a key
_DEFAULT_KEYS = {"state": "observation.state", "action": "action"}


@dataclass
class RecordedEpisode:
    index: int
    task: str
    values: dict[str, np.ndarray]  # feature -> (T, D) as stored (float32 features stay float32)
    images: dict[str, np.ndarray] = field(default_factory=dict)  # camera key -> (T, H, W, 3) uint8 (or transformed)
    extra: dict[str, Any] = field(default_factory=dict)  # the episode's row in meta/episodes (tasks, length, ...)

    @property
    def length(self) -> int:
        return int(self.extra["length"])


class LeRobotReader:
    """A v3.0 dataset's info, tasks and episodes; see the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / INFO_PATH
        if not path.exists():
            raise ConfigError(f"{self.root} is not a LeRobot dataset: no {INFO_PATH} there (record one with "
                              "`agentrt collect --format lerobot`, or give the folder that holds meta/)")
        self.info: dict[str, Any] = json.loads(path.read_text())
        version = str(self.info.get("codebase_version", "?"))
        if version.startswith("v2"):
            raise ConfigError(f"{self.root} is a LeRobot {version} dataset; agentrt reads {CODEBASE_VERSION}: convert it "
                              f"with LeRobot's converter (`{CONVERT_V21}`, in a LeRobot environment)")
        if version != CODEBASE_VERSION:
            raise ConfigError(f"{self.root}: codebase_version {version!r}, expected {CODEBASE_VERSION!r} "
                              "(a LeRobotDataset v3.0)")
        import_arrow()
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.fps = float(self.info["fps"])
        self.cameras = [k for k, f in self.features.items() if f["dtype"] in ("video", "image")]
        self.tasks = {i: t for t, i in read_tasks(self.root).items()}
        self.rows = episode_rows(self.root)

    @property
    def robot_type(self) -> str:
        return str(self.info.get("robot_type") or "unknown")

    def feature_key(self, kind: str, asked: str) -> str:
        """The feature for ``kind`` ("camera", "state", "action"): ``asked`` by full or short name, else the usual one.

        A camera may be named by its last part (``laptop`` for ``observation.images.laptop``); with none
        asked, a dataset's only camera, or its ``scene`` camera, is used."""
        flag = KEY_FLAGS[kind]
        if kind == "camera":
            names = {k: k for k in self.cameras} | {k.rsplit(".", 1)[-1]: k for k in self.cameras}
            if not asked:
                if len(self.cameras) == 1:
                    return self.cameras[0]
                asked = "scene" if "scene" in names else ""
            if asked in names:
                return names[asked]
            have = ", ".join(self.cameras) or "none"
            what = f"no camera {asked!r}" if asked else f"{len(self.cameras)} cameras"
            raise ConfigError(f"{self.root}: {what} (cameras: {have}); choose one with {flag} KEY")
        key = asked or _DEFAULT_KEYS[kind]
        if key in self.features and key not in self.cameras:
            return key
        have = ", ".join(k for k, f in self.features.items() if f["dtype"] not in ("video", "image"))
        raise ConfigError(f"{self.root}: no feature {key!r} for the {kind} (features: {have}); pass {flag} KEY")

    def episodes(self, keys: list[str], cameras: list[str], *, transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 keep: Callable[[dict[str, Any]], bool] | None = None) -> Iterator[RecordedEpisode]:
        """Episodes in index order with the ``keys`` features and ``cameras`` frames (``transform``-ed as decoded);
        ``keep(row)`` on the episode's meta row chooses which are read."""
        rows = [r for r in self.rows if keep is None or keep(r)]
        if not rows:
            return
        stills = [c for c in cameras if self.features[c]["dtype"] == "image"]  # PNGs in the data parquet
        table, pngs = self._data(keys, stills)
        index = table.pop("index")[:, 0].astype(np.int64)
        order = np.argsort(index, kind="stable")
        index = index[order]
        table = {k: v[order] for k, v in table.items()}
        pngs = {k: [v[i] for i in order] for k, v in pngs.items()}
        decoded: dict[str, tuple[Path, np.ndarray, list[np.ndarray]]] = {}
        for row in rows:
            start, end = np.searchsorted(index, [int(row["dataset_from_index"]), int(row["dataset_to_index"])])
            if end - start != int(row["length"]):
                raise ConfigError(f"{self.root}: episode {row['episode_index']} has {end - start} rows in data/, its "
                                  f"meta row says {row['length']}; the dataset is incomplete (record it again)")
            values = {k: v[start:end] for k, v in table.items()}
            images = {}
            for camera in stills:
                crop = self._cropped(camera, transform)
                images[camera] = np.stack([crop(_png(b)) for b in pngs[camera][start:end]])
            for camera in (c for c in cameras if c not in stills):
                path = self._video_path(camera, row)
                if camera not in decoded or decoded[camera][0] != path:
                    decoded[camera] = (path, *decode_video(path, self._cropped(camera, transform)))
                _, times, frames = decoded[camera]
                wanted = float(row[f"videos/{camera}/from_timestamp"]) + values["timestamp"][:, 0].astype(np.float64)
                images[camera] = np.stack([frames[i] for i in frames_at(times, wanted, self.fps, path)])
            tasks = row.get("tasks") or [self.tasks.get(int(values["task_index"][0, 0]), "")]
            yield RecordedEpisode(int(row["episode_index"]), str(tasks[0]), values, images, row)

    def _cropped(self, camera: str, transform: Callable[[np.ndarray], np.ndarray] | None
                 ) -> Callable[[np.ndarray], np.ndarray]:
        """The camera's frames at their recorded size (an odd side was padded by one pixel for yuv420p), then ``transform``."""
        h, w = self.features[camera]["shape"][:2]
        return lambda image: transform(image[:h, :w]) if transform is not None else image[:h, :w]

    def _data(self, keys: list[str], stills: list[str]) -> tuple[dict[str, np.ndarray], dict[str, list[bytes]]]:
        """The ``keys`` columns (and the index features) of every data file, as (N, D) arrays; the PNG bytes
        of the ``stills`` (image features: LeRobot's ``{bytes, path}`` struct per frame)."""
        pa = import_arrow()
        columns = list(dict.fromkeys([*keys, *stills, "index", "timestamp", "task_index"]))
        paths = sorted((self.root / "data").glob("*/*.parquet"))
        if not paths:
            raise ConfigError(f"{self.root}: no data/*/*.parquet; the dataset is incomplete (record it again)")
        table = pa.concat_tables([pa.parquet.read_table(p, columns=columns) for p in paths])
        out, pngs = {}, {}
        for key in columns:
            column = table.column(key).combine_chunks()
            if key in stills:
                pngs[key] = column.field("bytes").to_pylist()
                continue
            flat = column.flatten() if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type) else column
            out[key] = flat.to_numpy(zero_copy_only=False).reshape(len(table), -1)
        return out, pngs

    def _video_path(self, camera: str, row: dict[str, Any]) -> Path:
        template = self.info.get("video_path") or ""
        return self.root / template.format(video_key=camera, chunk_index=int(row[f"videos/{camera}/chunk_index"]),
                                           file_index=int(row[f"videos/{camera}/file_index"]))


def _png(data: bytes) -> np.ndarray:
    """One image feature's frame (PNG, as LeRobot stores images without videos) -> RGB uint8."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))
