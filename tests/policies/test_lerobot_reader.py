"""`agentrt train --data lerobot:PATH` on a dataset recorded with LeRobot on a real arm.

The fixture writes, with pyarrow and PyAV directly (not through agentrt's writer), a v3.0 folder as
LeRobot lays out an SO-100 recording: robot_type so100_follower, 30 fps, six ``*.pos`` joint values
for state and action, two cameras (``laptop``, ``phone``) in AV1 (LeRobot's codec), data rolled over
two files while one camera's video rolls at another episode than the other's, variable-length list
columns, a tasks.parquet whose index has no name. Every frame carries its position in its file as
its colour, so a frame read at the wrong timestamp is caught.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")
av = pytest.importorskip("av")
import pyarrow.parquet as pq  # noqa: E402

from agentrt.cli.__main__ import main  # noqa: E402

FPS = 30
JOINTS = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]
LENGTHS = (12, 9, 10)
TASKS = ("Grab the red cube", "Put it in the bin")
H, W = 64, 96
# where each episode's frames are: (data file, laptop video file, phone video file)
FILES = ((0, 0, 0), (0, 1, 0), (1, 1, 0))


def _marker(k: int, blue: int) -> np.ndarray:
    """Frame k of a video file: its number in red and green (10 levels a step: AV1 moves a flat colour by <= 3)."""
    return np.full((H, W, 3), (20 + 10 * (k % 20), 20 + 10 * (k // 20), blue), np.uint8)


def _write_video(path: Path, frames: int, blue: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libsvtav1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "30", "g": "2"}  # LeRobot's encode_video_frames settings
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(_marker(k, blue), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _vector(dims: int, names: list[str]) -> dict[str, object]:
    return {"dtype": "float32", "shape": [dims], "names": names}


def write_so100_dataset(root: Path) -> dict[str, np.ndarray]:
    """A LeRobot v3.0 SO-100 dataset (see the module); returns the state/action arrays written, by key."""
    rng = np.random.default_rng(0)
    n = sum(LENGTHS)
    values = {"observation.state": rng.uniform(-90, 90, (n, 6)).astype(np.float32),
              "action": rng.uniform(-90, 90, (n, 6)).astype(np.float32),
              "observation.ee": rng.uniform(-0.3, 0.3, (n, 4)).astype(np.float32),  # what an FK pass would add
              "action.ee": rng.uniform(-0.01, 0.01, (n, 4)).astype(np.float32)}
    video = {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"],
             "info": {"video.height": H, "video.width": W, "video.codec": "av1", "video.pix_fmt": "yuv420p",
                      "video.is_depth_map": False, "video.fps": FPS, "video.channels": 3, "has_audio": False}}
    features = {"action": _vector(6, JOINTS), "observation.state": _vector(6, JOINTS),
                "observation.ee": _vector(4, ["x", "y", "z", "gripper"]), "action.ee": _vector(4, ["dx", "dy", "dz", "gripper"]),
                "observation.images.laptop": video, "observation.images.phone": video,
                **{k: {"dtype": d, "shape": [1], "names": None} for k, d in (
                    ("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                    ("index", "int64"), ("task_index", "int64"))}}
    info = {"codebase_version": "v3.0", "robot_type": "so100_follower", "total_episodes": len(LENGTHS), "total_frames": n,
            "total_tasks": len(TASKS), "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 500,
            "fps": FPS, "splits": {"train": f"0:{len(LENGTHS)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4", "features": features}
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    (root / "meta/stats.json").write_text("{}")
    pd.DataFrame({"task_index": [0, 1]}, index=list(TASKS)).to_parquet(root / "meta/tasks.parquet")
    rows: list[dict[str, object]] = []
    data: dict[int, list[dict[str, object]]] = {0: [], 1: []}
    video_frames, start = {"laptop": [0, 0], "phone": [0]}, 0
    for e, (length, (data_file, laptop, phone)) in enumerate(zip(LENGTHS, FILES, strict=True)):
        task = e % 2
        data[data_file] += [{"index": start + i, "episode_index": e, "frame_index": i, "timestamp": i / FPS,
                             "task_index": task, **{k: v[start + i].tolist() for k, v in values.items()}}
                            for i in range(length)]
        row = {"episode_index": e, "tasks": [TASKS[task]], "length": length, "data/chunk_index": 0,
               "data/file_index": data_file, "dataset_from_index": start, "dataset_to_index": start + length}
        for camera, file_index in (("laptop", laptop), ("phone", phone)):
            first = video_frames[camera][file_index]
            row |= {f"videos/observation.images.{camera}/chunk_index": 0, f"videos/observation.images.{camera}/file_index": file_index,
                    f"videos/observation.images.{camera}/from_timestamp": first / FPS,
                    f"videos/observation.images.{camera}/to_timestamp": (first + length) / FPS}
            video_frames[camera][file_index] += length
        rows.append(row | {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        start += length
    for file_index, table in data.items():
        (root / "data/chunk-000").mkdir(parents=True, exist_ok=True)
        schema = pa.schema([(k, pa.list_(pa.float32())) for k in values] +
                           [(k, pa.float32() if k == "timestamp" else pa.int64()) for k in
                            ("index", "episode_index", "frame_index", "timestamp", "task_index")])
        pq.write_table(pa.Table.from_pylist(table, schema=schema), root / f"data/chunk-000/file-{file_index:03d}.parquet")
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "meta/episodes/chunk-000/file-000.parquet")
    for camera, blue in (("laptop", 200), ("phone", 60)):
        for file_index, count in enumerate(video_frames[camera]):
            _write_video(root / f"videos/observation.images.{camera}/chunk-000/file-{file_index:03d}.mp4", count, blue)
    return values


@pytest.fixture(scope="module")
def so100(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("so100") / "record-test"
    return root, write_so100_dataset(root)


def test_reads_a_dataset_recorded_with_lerobot(so100: tuple[Path, dict[str, np.ndarray]]) -> None:
    from policies.lerobot.reader import LeRobotReader

    root, values = so100
    reader = LeRobotReader(root)
    assert reader.robot_type == "so100_follower" and reader.tasks == dict(enumerate(TASKS))
    cameras = [reader.feature_key("camera", "laptop"), reader.feature_key("camera", "observation.images.phone")]
    assert cameras == ["observation.images.laptop", "observation.images.phone"]
    episodes = list(reader.episodes(["observation.state", "action"], cameras))
    assert [ep.task for ep in episodes] == [TASKS[0], TASKS[1], TASKS[0]]
    start = 0
    for ep, length in zip(episodes, LENGTHS, strict=True):
        for key in ("observation.state", "action"):
            np.testing.assert_array_equal(ep.values[key], values[key][start:start + length])
        for camera, blue, first in (("laptop", 200, ep.extra["videos/observation.images.laptop/from_timestamp"]),
                                    ("phone", 60, ep.extra["videos/observation.images.phone/from_timestamp"])):
            frames = ep.images[f"observation.images.{camera}"]
            assert frames.shape == (length, H, W, 3)
            k0 = round(first * FPS)
            expected = np.stack([_marker(k0 + i, blue)[0, 0] for i in range(length)]).astype(float)
            np.testing.assert_allclose(frames.mean(axis=(1, 2)), expected, atol=4)  # the right frame, each time (a neighbour is 10 off)
        start += length
    assert episodes[1].extra["videos/observation.images.laptop/from_timestamp"] == 0  # laptop rolled to file-001 there


def _train(root: Path, *extra: str, out: Path) -> int:
    return main(["train", "--data", f"lerobot:{root}", "--steps", "2", "--batch-size", "4", "--threads", "1",
                 "--set", "width=32", "--set", "depth=1", "--out", str(out), *extra])


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_joint_space_actions_say_what_to_do(so100: tuple[Path, dict[str, np.ndarray]], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = so100
    assert _train(root, "--camera", "laptop", out=tmp_path) == 2
    err = _one_line(capsys)
    assert "'action' has [6] values: shoulder_pan.pos" in err and "forward kinematics" in err and "--map-action KEY" in err


def test_trains_on_a_lerobot_arm_dataset_where_it_fits(so100: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    from policies.vla.model import load_model

    root, _ = so100
    assert _train(root, "--camera", "laptop", "--map-state", "observation.ee", "--map-action", "action.ee", out=tmp_path) == 0
    model, extra = load_model(tmp_path / "nano_vla.safetensors")
    assert extra["robot"] == "so100_follower" and model.config.image_size == 64  # 64 x 96 frames, centre-cropped
    assert extra["training"]["samples"] == sum(LENGTHS)  # every frame a sample


def test_bad_datasets_and_keys_are_one_line(so100: tuple[Path, dict[str, np.ndarray]], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = so100
    assert _train(tmp_path, out=tmp_path / "r") == 2
    assert "is not a LeRobot dataset: no meta/info.json" in _one_line(capsys)
    old = tmp_path / "old"
    (old / "meta").mkdir(parents=True)
    (old / "meta/info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 30, "features": {}}))
    assert _train(old, out=tmp_path / "r") == 2
    assert "LeRobot v2.1 dataset" in (err := _one_line(capsys)) and "convert_dataset_v21_to_v30" in err
    assert _train(root, out=tmp_path / "r") == 2  # two cameras, none named scene
    assert "2 cameras (cameras: observation.images.laptop, observation.images.phone); choose one with --camera" in _one_line(capsys)
    assert _train(root, "--camera", "top", out=tmp_path / "r") == 2
    assert "no camera 'top'" in _one_line(capsys)
    assert _train(root, "--camera", "laptop", "--map-state", "observation.nope", out=tmp_path / "r") == 2
    assert "no feature 'observation.nope' for the state (features: action, observation.state" in (err := _one_line(capsys))
    assert "pass --map-state KEY" in err
    assert main(["train", "--data", str(root), "--steps", "1", "--out", str(tmp_path / "r")]) == 2
    assert f"pass it as lerobot:{root}" in _one_line(capsys)


def test_reads_a_dataset_recorded_without_videos(tmp_path: Path) -> None:
    """LeRobot with ``use_videos=False`` keeps each frame as a PNG in the data parquet ({bytes, path})."""
    import io

    from PIL import Image

    from policies.lerobot.nano import LeRobotKeys, nano_episodes

    rng = np.random.default_rng(2)
    lengths, n = (4, 3), 7
    frames = rng.integers(0, 255, (n, 24, 24, 3), dtype=np.uint8)
    state, action = rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(n, 4)).astype(np.float32)
    features = {"observation.images.front": {"dtype": "image", "shape": [24, 24, 3], "names": ["height", "width", "channels"]},
                "observation.state": _vector(4, ["x", "y", "z", "gripper"]), "action": _vector(4, ["dx", "dy", "dz", "gripper"]),
                **{k: {"dtype": d, "shape": [1], "names": None} for k, d in (
                    ("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"),
                    ("task_index", "int64"))}}
    (tmp_path / "meta/episodes/chunk-000").mkdir(parents=True)
    (tmp_path / "data/chunk-000").mkdir(parents=True)
    (tmp_path / "meta/info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "robot_type": "koch_follower", "total_episodes": 2, "total_frames": n, "total_tasks": 1,
        "chunks_size": 1000, "fps": 30, "splits": {"train": "0:2"}, "video_path": None, "features": features,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"}))
    pd.DataFrame({"task_index": [0]}, index=pd.Index(["stack"], name="task")).to_parquet(tmp_path / "meta/tasks.parquet")

    def png(image: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(image).save(out, format="PNG")
        return out.getvalue()

    episode_of = [e for e, length in enumerate(lengths) for _ in range(length)]
    frame_of = [i for length in lengths for i in range(length)]
    pq.write_table(pa.table({
        "observation.images.front": pa.array([{"bytes": png(f), "path": None} for f in frames],
                                             pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "observation.state": pa.array(state.tolist(), pa.list_(pa.float32())),
        "action": pa.array(action.tolist(), pa.list_(pa.float32())),
        "timestamp": pa.array([i / 30 for i in frame_of], pa.float32()), "frame_index": pa.array(frame_of, pa.int64()),
        "episode_index": pa.array(episode_of, pa.int64()), "index": pa.array(range(n), pa.int64()),
        "task_index": pa.array([0] * n, pa.int64())}), tmp_path / "data/chunk-000/file-000.parquet")
    pq.write_table(pa.Table.from_pylist([
        {"episode_index": e, "tasks": ["stack"], "length": length, "data/chunk_index": 0, "data/file_index": 0,
         "dataset_from_index": sum(lengths[:e]), "dataset_to_index": sum(lengths[:e + 1])}
        for e, length in enumerate(lengths)]), tmp_path / "meta/episodes/chunk-000/file-000.parquet")
    episodes = list(nano_episodes(str(tmp_path), LeRobotKeys(), images=True, tasks=None))
    assert [len(ep.actions) for ep in episodes] == list(lengths) and episodes[1].instruction == "stack"
    np.testing.assert_array_equal(np.concatenate([ep.images for ep in episodes]), frames)  # PNG: exact
    np.testing.assert_array_equal(np.concatenate([ep.states for ep in episodes]), state)
