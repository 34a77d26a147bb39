"""`LeRobotWriter`: episodes in, a LeRobotDataset v3.0 folder out (layout: `policies.lerobot.layout`).

    writer = LeRobotWriter("data/lr", fps=20, robot_type="panda", features={
        "observation.images.scene": {"dtype": "video", "shape": [64, 64, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [4], "names": ["x", "y", "z", "gripper"]},
        "action": {"dtype": "float32", "shape": [4], "names": ["dx", "dy", "dz", "gripper"]}})
    writer.add_episode("touch the red cube", {"observation.images.scene": frames, "observation.state": s, "action": a})
    writer.close()                                     # data, episodes, tasks, stats and info.json on disk

Every frame of every camera goes into the camera's MP4 as it is added (episodes back to back);
the rows of the other features are kept until they reach ``data_files_size_in_mb`` and then
written as one data file; a camera's MP4 that has reached ``video_files_size_in_mb`` is closed
before the next episode, which starts the next file (LeRobot's defaults, 100 and 500 MB, are
written in info.json). ``close`` writes the last data file, the episodes' rows as one episodes
file, then tasks, stats and info. A writer opened on an existing dataset of the same features and
fps appends: its episodes go on from the last index into the next file indices, and tasks, stats
and totals cover old and new. A writer that is never closed (a crash) leaves the dataset as it was
before it, plus files no episode refers to, which the next writer overwrites.
Extra per-episode columns (``add_episode(..., extra={"agentrt_seed": 3})``) are kept in the episodes
file, which LeRobot reads and ignores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.errors import ConfigError
from policies.lerobot.layout import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    INDEX_FEATURES,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    data_file,
    episodes_file,
    import_arrow,
    import_pandas,
    new_info,
    video_file,
    video_info,
)
from policies.lerobot.stats import FeatureStats, image_stats, pool_stats, stats_json, vector_stats
from policies.lerobot.video import CameraVideo, DatasetVideoConfig

__all__ = ["LeRobotWriter", "read_tasks", "episode_rows"]


def read_tasks(root: Path) -> dict[str, int]:
    """meta/tasks.parquet -> task string -> task_index (the strings are the pandas index; a ``task`` column also reads)."""
    frame = import_pandas().read_parquet(root / TASKS_PATH)
    names = frame["task"] if "task" in frame.columns else frame.index
    return {str(t): int(i) for t, i in zip(names, frame["task_index"], strict=True)}


def episode_rows(root: Path) -> list[dict[str, Any]]:
    """Every row of meta/episodes/*/*.parquet, in episode order."""
    pq = import_arrow().parquet
    rows = [r for path in sorted((root / "meta" / "episodes").glob("*/*.parquet")) for r in pq.read_table(path).to_pylist()]
    return sorted(rows, key=lambda r: int(r["episode_index"]))


class LeRobotWriter:
    """``add_episode(task, values)`` per episode, ``close()`` at the end; see the module docstring."""

    def __init__(self, root: str | Path, *, fps: int, robot_type: str, features: dict[str, dict[str, Any]],
                 video: DatasetVideoConfig | None = None, data_files_size_in_mb: float | None = None,
                 video_files_size_in_mb: float | None = None) -> None:
        self._pa = import_arrow()  # now: a missing extra is one line before any episode is recorded
        self.root = Path(root)
        self.video_keys = [k for k, f in features.items() if f["dtype"] == "video"]
        self.columns = [k for k, f in features.items() if f["dtype"] != "video"]
        info_path = self.root / INFO_PATH
        if info_path.exists():
            self.info = self._existing(json.loads(info_path.read_text()), fps, features)
            self.tasks = read_tasks(self.root)
            self.written = episode_rows(self.root)
        else:
            self.info, self.tasks, self.written = new_info(fps, robot_type, features, videos=bool(self.video_keys)), {}, []
        for key, size in (("data_files_size_in_mb", data_files_size_in_mb), ("video_files_size_in_mb", video_files_size_in_mb)):
            if size is not None:
                self.info[key] = size
        self.fps = fps
        self.episode_index = int(self.info["total_episodes"])
        self.frame_index = int(self.info["total_frames"])
        # the next file of each kind: after the last one an episode refers to (an unreferenced one, left by a
        # writer that was never closed, is overwritten)
        self.data_index = _next_file(self.written, "data")
        self.meta_index = _next_file(self.written, "meta/episodes")
        self.video_index = {k: _next_file(self.written, f"videos/{k}") for k in self.video_keys}
        self._rows: dict[str, list[np.ndarray]] = {k: [] for k in [*self.columns, *INDEX_FEATURES]}
        self._buffered_bytes = 0
        self._episodes: list[dict[str, Any]] = []
        self._video_config = video or DatasetVideoConfig()
        self._videos = {k: self._open_video(k) for k in self.video_keys}
        self.codecs: dict[str, str] = {}

    def _open_video(self, key: str) -> CameraVideo:
        return CameraVideo(self.root / video_file(key, self.video_index[key]), self.fps, self._video_config)

    def _existing(self, info: dict[str, Any], fps: int, features: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """An existing dataset's info, when this writer can append to it."""
        if info.get("codebase_version") != CODEBASE_VERSION or info.get("fps") != fps:
            raise ConfigError(f"{self.root}: a dataset is there already (codebase_version {info.get('codebase_version')}, "
                              f"fps {info.get('fps')}); appending needs {CODEBASE_VERSION} at fps {fps}: choose another folder")
        have = {k: (f["dtype"], list(f["shape"])) for k, f in info["features"].items() if k not in INDEX_FEATURES}
        want = {k: (f["dtype"], list(f["shape"])) for k, f in features.items()}
        if have != want:
            raise ConfigError(f"{self.root}: the dataset there has other features ({have}) than these ({want}); "
                              "append with the same image size and cameras, or choose another folder")
        return info

    def add_episode(self, task: str, values: dict[str, np.ndarray], extra: dict[str, Any] | None = None) -> int:
        """Add one episode: every feature's (T, ...) values; the videos' (T, H, W, 3) uint8. Returns its index."""
        missing = sorted(set(self.columns + self.video_keys) - set(values))
        if missing:
            raise ConfigError(f"LeRobotWriter.add_episode: no values for {missing}")
        T = len(values[self.columns[0]] if self.columns else values[self.video_keys[0]])
        for key, array in values.items():
            feature = self.info["features"][key]
            shape = [T, *feature["shape"]] if feature["shape"] != [1] else [T]
            if list(np.shape(array)) != shape and list(np.shape(array)) != [T, 1]:
                raise ConfigError(f"LeRobotWriter.add_episode: {key} has shape {list(np.shape(array))}, expected {shape}")
        task_index = self.tasks.setdefault(task, len(self.tasks))
        index: dict[str, np.ndarray] = {"timestamp": (np.arange(T) / self.fps).astype(np.float32), "frame_index": np.arange(T),
                 "episode_index": np.full(T, self.episode_index), "index": self.frame_index + np.arange(T),
                 "task_index": np.full(T, task_index)}
        row: dict[str, Any] = {"episode_index": self.episode_index, "tasks": [task], "length": T,
                               **_file_columns("data", self.data_index),
                               "dataset_from_index": self.frame_index, "dataset_to_index": self.frame_index + T}
        stats: dict[str, FeatureStats] = {}
        for key in self.video_keys:
            self._roll_video(key)
            start, end = self._videos[key].write(np.asarray(values[key], np.uint8))
            row.update({**_file_columns(f"videos/{key}", self.video_index[key]),
                        f"videos/{key}/from_timestamp": start, f"videos/{key}/to_timestamp": end})
            stats[key] = image_stats(np.asarray(values[key], np.uint8))
        for key in self.columns:
            self._rows[key].append(np.asarray(values[key], self.info["features"][key]["dtype"]).reshape(T, -1))
            stats[key] = vector_stats(values[key])
        for key, array in index.items():
            self._rows[key].append(array.astype(INDEX_FEATURES[key]["dtype"]).reshape(T, 1))
            stats[key] = vector_stats(array)
        self._buffered_bytes += sum(parts[-1].nbytes for parts in self._rows.values())
        row.update(_file_columns("meta/episodes", self.meta_index))
        row.update({f"stats/{key}/{name}": value.tolist() for key, s in stats.items() for name, value in s.items()})
        row.update(extra or {})
        self._episodes.append(row)
        self.episode_index += 1
        self.frame_index += T
        if self._buffered_bytes >= float(self.info["data_files_size_in_mb"]) * _MB:  # this data file is full
            self._flush_data()
            self.data_index += 1
        return self.episode_index - 1

    def _roll_video(self, key: str) -> None:
        """Go on in the camera's next file once this one has reached ``video_files_size_in_mb``."""
        camera = self._videos[key]
        if camera.frames and camera.bytes >= float(self.info["video_files_size_in_mb"]) * _MB:
            camera.close()
            self.codecs[key] = camera.codec
            self.video_index[key] += 1
            self._videos[key] = self._open_video(key)

    def _flush_data(self) -> None:
        """The buffered rows -> the current data file."""
        pa, pq = self._pa, self._pa.parquet
        columns = {}
        for key, parts in self._rows.items():
            values = np.concatenate(parts)
            feature = self.info["features"].get(key) or INDEX_FEATURES[key]
            if feature["shape"] == [1]:
                columns[key] = pa.array(values[:, 0])
            else:  # a fixed-size list per frame, as LeRobot's datasets.Sequence(length=D) stores it
                columns[key] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
            parts.clear()
        path = self.root / data_file(self.data_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), path)
        self._buffered_bytes = 0

    def close(self) -> dict[str, Any]:
        """Write the data, episodes, tasks, stats and info; returns info.json's content."""
        for key, camera in self._videos.items():
            camera.close()
            if camera.frames:
                self.codecs[key] = camera.codec
            else:  # nothing in it (no episode since it opened): no file
                camera.path.unlink(missing_ok=True)
        if not self._episodes:  # nothing new: the dataset stays as it was
            return self.info
        pa, pq = self._pa, self._pa.parquet
        if self._rows["index"]:
            self._flush_data()
        path = self.root / episodes_file(self.meta_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self._episodes), path)
        pd = import_pandas()
        tasks = pd.DataFrame({"task_index": list(self.tasks.values())}, index=pd.Index(list(self.tasks), name="task"))
        tasks.to_parquet(self.root / TASKS_PATH)
        self._write_stats([*self.written, *self._episodes])
        for key in self.video_keys:
            h, w = self.info["features"][key]["shape"][:2]
            codec = self.codecs.get(key) or self.info["features"][key].get("info", {}).get("video.codec", "")
            self.info["features"][key]["info"] = video_info(h, w, self.fps, _codec_name(codec))
        self.info.update(total_episodes=self.episode_index, total_frames=self.frame_index, total_tasks=len(self.tasks),
                         splits={"train": f"0:{self.episode_index}"})
        (self.root / INFO_PATH).write_text(json.dumps(self.info, indent=4) + "\n")
        self.written, self._episodes = [*self.written, *self._episodes], []
        self.meta_index += 1
        return self.info

    def _write_stats(self, episodes: list[dict[str, Any]]) -> None:
        """meta/stats.json: every feature's stats pooled over all episodes' ``stats/`` columns."""
        pooled: dict[str, FeatureStats] = {}
        for key in [*self.video_keys, *self.columns, *INDEX_FEATURES]:
            parts = [{n: np.asarray(e[f"stats/{key}/{n}"]) for n in ("min", "max", "mean", "std", "count")}
                     for e in episodes if f"stats/{key}/mean" in e]
            if parts:
                pooled[key] = pool_stats(parts)
        (self.root / STATS_PATH).write_text(json.dumps(stats_json(pooled), indent=4) + "\n")


_MB = 1024 * 1024  # LeRobot's sizes in MB are MiB


def _file_columns(prefix: str, index: int) -> dict[str, int]:
    """``prefix/chunk_index`` and ``prefix/file_index`` of a file numbered ``index`` across chunks."""
    return {f"{prefix}/chunk_index": index // CHUNKS_SIZE, f"{prefix}/file_index": index % CHUNKS_SIZE}


def _next_file(rows: list[dict[str, Any]], prefix: str) -> int:
    """One past the last ``prefix`` file the episode rows refer to (0 for none)."""
    used = [int(r[f"{prefix}/chunk_index"]) * CHUNKS_SIZE + int(r[f"{prefix}/file_index"])
            for r in rows if f"{prefix}/file_index" in r]
    return max(used, default=-1) + 1


def _codec_name(encoder: str) -> str:
    """FFmpeg's codec name for an encoder (what LeRobot's info.json says: "h264", "av1")."""
    return {"libx264": "h264", "libsvtav1": "av1", "libaom-av1": "av1"}.get(encoder, encoder)
