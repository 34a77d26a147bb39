"""The published LeRobotDataset v3.0 layout: paths, the index features, info.json, and the optional imports.

    DATASET/meta/info.json                                   codebase_version "v3.0", fps, features, totals, paths
    DATASET/meta/stats.json                                  min, max, mean, std, count per feature
    DATASET/meta/tasks.parquet                               index: the task string; column task_index
    DATASET/meta/episodes/chunk-000/file-000.parquet         one row per episode (lengths, tasks, where its rows
                                                             and video frames are)
    DATASET/data/chunk-000/file-000.parquet                  one row per frame: every non-video feature + index features
    DATASET/videos/<video_key>/chunk-000/file-000.mp4        the episodes of one camera back to back

Names and templates as in LeRobot's ``datasets/utils.py`` (lerobot 0.4-0.6), so a folder written here
loads in ``LeRobotDataset(repo_id, root=DATASET)`` and a folder recorded there reads here.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from agentrt.errors import MissingDependencyError

__all__ = ["CODEBASE_VERSION", "DATA_PATH", "VIDEO_PATH", "EPISODES_PATH", "TASKS_PATH", "INFO_PATH", "STATS_PATH",
           "INDEX_FEATURES", "CHUNKS_SIZE", "INSTALL", "DATA_FORMATS", "import_arrow", "import_pandas", "new_info", "video_info",
           "data_file", "video_file", "episodes_file"]

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
CHUNKS_SIZE = 1000  # files per chunk folder (LeRobot's DEFAULT_CHUNK_SIZE)
DATA_FILES_SIZE_IN_MB = 100  # LeRobot's defaults, written for its own writer to resume with
VIDEO_FILES_SIZE_IN_MB = 500
INSTALL = "pip install 'agentrt[lerobot]'"
DATA_FORMATS = ("npz", "lerobot")  # what `agentrt collect --format` writes: npz arrays, or this layout

# Every frame of every dataset carries these (LeRobot's DEFAULT_FEATURES)
INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def import_arrow() -> ModuleType:
    """``pyarrow`` (with ``pyarrow.parquet`` loaded), or one line naming the extra to install."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - loads the submodule onto pyarrow
    except ImportError:
        raise MissingDependencyError("pyarrow", "LeRobot datasets", INSTALL) from None
    return pyarrow


def import_pandas() -> ModuleType:
    """``pandas`` (meta/tasks.parquet keeps its task strings in a pandas index), or one line naming the extra."""
    try:
        import pandas
    except ImportError:
        raise MissingDependencyError("pandas", "LeRobot datasets", INSTALL) from None
    return pandas


def data_file(file_index: int) -> str:
    return DATA_PATH.format(chunk_index=file_index // CHUNKS_SIZE, file_index=file_index % CHUNKS_SIZE)


def video_file(video_key: str, file_index: int) -> str:
    return VIDEO_PATH.format(video_key=video_key, chunk_index=file_index // CHUNKS_SIZE,
                             file_index=file_index % CHUNKS_SIZE)


def episodes_file(file_index: int) -> str:
    return EPISODES_PATH.format(chunk_index=file_index // CHUNKS_SIZE, file_index=file_index % CHUNKS_SIZE)


def video_info(height: int, width: int, fps: int, codec: str) -> dict[str, Any]:
    """The ``info`` block of a video feature, with LeRobot's key names."""
    return {"video.height": height, "video.width": width, "video.codec": codec, "video.pix_fmt": "yuv420p",
            "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}


def new_info(fps: int, robot_type: str, features: dict[str, dict[str, Any]], *, videos: bool) -> dict[str, Any]:
    """An empty dataset's info.json (LeRobot's ``create_empty_dataset_info``); the index features are added."""
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": fps,
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if videos else None,
        "features": {**features, **INDEX_FEATURES},
    }
