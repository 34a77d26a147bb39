"""`agentrt collect --format lerobot`: the published LeRobotDataset v3.0 layout, checked file by file and
column by column (lerobot itself cannot be installed beside torch 2.13), the round trip through
agentrt's reader (states, actions and tasks equal, frames within a PSNR floor), appending, stats."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")
pytest.importorskip("av")
import pyarrow.parquet as pq  # noqa: E402

from agentrt.errors import ConfigError, MissingDependencyError  # noqa: E402

INFO_KEYS = {"codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
             "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path", "features"}
INDEX = ("timestamp", "frame_index", "episode_index", "index", "task_index")
VIDEO_INFO = {"video.height", "video.width", "video.codec", "video.pix_fmt", "video.is_depth_map", "video.fps",
              "video.channels", "has_audio"}
CAMERAS = ("observation.images.scene", "observation.images.wrist")
PSNR_FLOOR_DB = 26.0  # measured: min 28.8, median 30.2 dB at crf 18 on 32 px frames; one frame off: min 22.5


def _collect(out: Path, episodes: int) -> list[Any]:
    from policies.vla.data import CollectConfig, collect

    kept: list[Any] = []
    collect(CollectConfig(tasks=("reach",), episodes=episodes, image_size=32, noise_m=0.0, image_every=1, wrist=True,
                          format="lerobot", out_dir=str(out)), lambda ep: kept.append(ep) if ep.success else None)
    return kept


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    root = tmp_path_factory.mktemp("lr") / "ds"
    return root, _collect(root, 2)


def test_collect_writes_the_published_v3_layout(dataset: tuple[Path, list[Any]]) -> None:
    root, kept = dataset
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/info.json",
                     "meta/stats.json", "meta/tasks.parquet",
                     *[f"videos/{c}/chunk-000/file-000.mp4" for c in CAMERAS]]
    info = json.loads((root / "meta/info.json").read_text())
    assert INFO_KEYS <= set(info) and info["codebase_version"] == "v3.0"
    assert info["fps"] == 20 and isinstance(info["fps"], int) and info["robot_type"] == "panda"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    lengths = [len(ep.actions) for ep in kept]
    assert info["total_episodes"] == len(kept) and info["total_frames"] == sum(lengths)
    assert info["splits"] == {"train": f"0:{len(kept)}"} and info["total_tasks"] == len({ep.instruction for ep in kept})
    features = info["features"]
    for key in INDEX:
        assert features[key]["shape"] == [1] and features[key]["dtype"] in ("float32", "int64")
    for camera in CAMERAS:
        assert features[camera]["dtype"] == "video" and features[camera]["shape"] == [32, 32, 3]
        assert features[camera]["names"] == ["height", "width", "channels"]
        assert set(features[camera]["info"]) == VIDEO_INFO and features[camera]["info"]["video.codec"] == "h264"
    assert features["action"] == {"dtype": "float32", "shape": [4], "names": ["dx", "dy", "dz", "gripper"]}

    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert set(data.column_names) == {k for k, f in features.items() if f["dtype"] != "video"}
    assert data.column("index").to_pylist() == list(range(sum(lengths)))
    assert data.column("frame_index").to_pylist() == [i for n in lengths for i in range(n)]
    assert data.column("episode_index").to_pylist() == [e for e, n in enumerate(lengths) for _ in range(n)]
    np.testing.assert_allclose(data.column("timestamp").to_numpy(), [i / 20 for n in lengths for i in range(n)], atol=1e-6)

    tasks = pd.read_parquet(root / "meta/tasks.parquet")  # the task strings are the index, as LeRobot writes them
    assert list(tasks.index) == list(dict.fromkeys(ep.instruction for ep in kept))
    assert list(tasks["task_index"]) == list(range(len(tasks)))
    task_of = dict(zip(tasks["task_index"], tasks.index, strict=True))
    assert [task_of[t] for t in data.column("task_index").to_pylist()] == [ep.instruction for ep in kept for _ in ep.actions]

    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    start = 0
    for row, n, ep in zip(episodes, lengths, kept, strict=True):
        assert row["tasks"] == [ep.instruction] and row["length"] == n
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (start, start + n)
        assert (row["data/chunk_index"], row["data/file_index"], row["meta/episodes/chunk_index"],
                row["meta/episodes/file_index"]) == (0, 0, 0, 0)
        for camera in CAMERAS:
            assert (row[f"videos/{camera}/chunk_index"], row[f"videos/{camera}/file_index"]) == (0, 0)
            assert row[f"videos/{camera}/from_timestamp"] == pytest.approx(start / 20)
            assert row[f"videos/{camera}/to_timestamp"] == pytest.approx((start + n) / 20)
        assert row["stats/action/count"] == [n] and len(row["stats/action/mean"]) == 4
        start += n


def test_stats_cover_every_feature_images_per_channel(dataset: tuple[Path, list[Any]]) -> None:
    root, kept = dataset
    stats = json.loads((root / "meta/stats.json").read_text())
    info = json.loads((root / "meta/info.json").read_text())
    assert set(stats) == set(info["features"])
    actions = np.concatenate([ep.actions for ep in kept]).astype(np.float64)
    for name, expected in (("min", actions.min(0)), ("max", actions.max(0)), ("mean", actions.mean(0)), ("std", actions.std(0))):
        np.testing.assert_allclose(stats["action"][name], expected, rtol=1e-5, atol=1e-7)
    assert stats["action"]["count"] == [len(actions)]
    image = np.asarray(stats["observation.images.scene"]["mean"])
    assert image.shape == (3, 1, 1) and 0 < image.min() and image.max() < 1  # pixels in [0, 1], per channel
    pixels = np.concatenate([ep.images for ep in kept]).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(image[:, 0, 0], pixels.mean(0), atol=1e-9)


def test_pooled_stats_equal_the_stats_of_all_frames() -> None:
    from policies.lerobot.stats import pool_stats, vector_stats

    rng = np.random.default_rng(0)
    parts = [rng.normal(i, 1 + i, (n, 3)) for i, n in enumerate((5, 17, 40))]
    pooled, whole = pool_stats([vector_stats(p) for p in parts]), vector_stats(np.concatenate(parts))
    for name in ("min", "max", "mean", "std", "count"):
        np.testing.assert_allclose(pooled[name], whole[name], rtol=1e-12)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def test_round_trip_through_the_reader(dataset: tuple[Path, list[Any]]) -> None:
    from policies.lerobot.nano import LeRobotKeys, nano_episodes
    from policies.lerobot.reader import LeRobotReader

    root, kept = dataset
    read = list(nano_episodes(str(root), LeRobotKeys(), images=True, tasks=None))
    assert len(read) == len(kept)
    for back, ep in zip(read, kept, strict=True):
        assert back.instruction == ep.instruction and back.task == ep.task == "reach" and back.seed == ep.seed
        np.testing.assert_array_equal(back.states, ep.states)
        np.testing.assert_array_equal(back.actions, ep.actions)
        np.testing.assert_array_equal(back.targets, ep.targets)
        assert back.images.shape == ep.images.shape  # every frame, not every 2nd
        psnr = [_psnr(a, b) for a, b in zip(back.images, ep.images, strict=True)]
        assert min(psnr) > PSNR_FLOOR_DB, psnr
    wrist = LeRobotReader(root).feature_key("camera", "wrist")
    back_wrist = next(nano_episodes(str(root), LeRobotKeys(camera=wrist), images=True, tasks=None))
    assert min(_psnr(a, b) for a, b in zip(back_wrist.images, kept[0].wrist_images, strict=True)) > PSNR_FLOOR_DB


def test_a_second_collection_appends_and_skips_what_is_there(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    first = _collect(root, 1)
    more = _collect(root, 2)  # seed 0 is there: only seed 1 is recorded
    assert [ep.seed for ep in first] == [0] and [ep.seed for ep in more] == [1]
    assert (root / "data/chunk-000/file-001.parquet").exists()
    assert (root / "videos/observation.images.scene/chunk-000/file-001.mp4").exists()
    info = json.loads((root / "meta/info.json").read_text())
    n = len(first[0].actions) + len(more[0].actions)
    assert info["total_episodes"] == 2 and info["total_frames"] == n
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["action"]["count"] == [n]
    from policies.lerobot.nano import LeRobotKeys, nano_episodes

    read = list(nano_episodes(str(root), LeRobotKeys(), images=True, tasks=None))
    assert [e.seed for e in read] == [0, 1]
    np.testing.assert_array_equal(read[1].actions, more[0].actions)
    assert min(_psnr(a, b) for a, b in zip(read[1].images, more[0].images, strict=True)) > PSNR_FLOOR_DB


def test_lerobot_format_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    from policies.lerobot.writer import LeRobotWriter
    from policies.vla.data import CollectConfig

    with pytest.raises(ConfigError, match="every frame"):
        CollectConfig(format="lerobot", image_every=2)
    with pytest.raises(ConfigError, match="format"):
        CollectConfig(format="hdf5")
    features = {"action": {"dtype": "float32", "shape": [4], "names": None}}
    writer = LeRobotWriter(tmp_path, fps=20, robot_type="x", features=features)
    with pytest.raises(ConfigError, match=r"action has shape \[3, 6\], expected \[3, 4\]"):
        writer.add_episode("t", {"action": np.zeros((3, 6))})
    writer.add_episode("t", {"action": np.zeros((3, 4))})
    writer.close()
    with pytest.raises(ConfigError, match="other features"):  # appending a different shape: one line, nothing written
        LeRobotWriter(tmp_path, fps=20, robot_type="x", features={"action": {**features["action"], "shape": [6]}})
    with pytest.raises(ConfigError, match="fps 30"):
        LeRobotWriter(tmp_path, fps=30, robot_type="x", features=features)


def test_missing_pyarrow_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from agentrt.cli.__main__ import main
    from policies.lerobot.writer import LeRobotWriter

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'agentrt\[lerobot\]'"):
        LeRobotWriter(tmp_path, fps=20, robot_type="x", features={})
    assert main(["collect", "--format", "lerobot", "--episodes", "1", "--size", "32", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'agentrt[lerobot]'" in err and "Traceback" not in err


def test_collect_then_train_on_it(dataset: tuple[Path, list[Any]], tmp_path: Path) -> None:
    """The issue's done-when: a dataset from `collect --format lerobot` trains through `train --data lerobot:PATH`."""
    from agentrt.cli.__main__ import main
    from policies.vla.model import load_model

    root, kept = dataset
    assert main(["train", "--data", f"lerobot:{root}", "--steps", "2", "--batch-size", "4", "--threads", "1",
                 "--set", "width=32", "--set", "depth=1", "--out", str(tmp_path)]) == 0
    model, extra = load_model(tmp_path / "nano_vla.safetensors")
    assert extra["robot"] == "panda" and model.config.image_size == 32
    assert extra["training"]["samples"] == sum(len(ep.actions) for ep in kept)  # every frame a sample
    assert extra["training"]["episodes"] == len(kept)


def test_codec_bench_measures_both_codecs() -> None:
    from policies.lerobot.codec_bench import compare_codecs

    lines = compare_codecs(frames=6, size=32, repeats=1)
    assert [line.split(":")[0].split()[0] for line in lines] == ["libx264", "libsvtav1"]
    assert all("6 frames at 32 px" in line and "PSNR min" in line for line in lines)


def test_files_roll_at_their_sizes_and_read_back(tmp_path: Path) -> None:
    from policies.lerobot.reader import LeRobotReader
    from policies.lerobot.writer import LeRobotWriter

    features = {"observation.images.cam": {"dtype": "video", "shape": [16, 24, 3], "names": ["height", "width", "channels"]},
                "action": {"dtype": "float32", "shape": [2], "names": ["a", "b"]}}
    rng = np.random.default_rng(1)
    episodes = [(rng.integers(0, 255, (n, 16, 24, 3), dtype=np.uint8), rng.normal(size=(n, 2)).astype(np.float32))
                for n in (27, 25, 29, 26)]
    # ~100 bytes of rows per data file (an episode has 1,100+) and 1 KiB of video (an episode of noise: more,
    # once the encoder's lookahead of ~10 frames is out)
    writer = LeRobotWriter(tmp_path, fps=10, robot_type="x", features=features, data_files_size_in_mb=0.0001,
                           video_files_size_in_mb=0.001)
    for i, (frames, actions) in enumerate(episodes):
        writer.add_episode(f"task {i % 2}", {"observation.images.cam": frames, "action": actions})
    info = writer.close()
    assert info["data_files_size_in_mb"] == 0.0001 and info["total_frames"] == 107
    assert len(list(tmp_path.glob("data/chunk-000/*.parquet"))) == 4
    assert len(list(tmp_path.glob("videos/observation.images.cam/chunk-000/*.mp4"))) == 4
    reader = LeRobotReader(tmp_path)
    assert [r["data/file_index"] for r in reader.rows] == [0, 1, 2, 3]
    assert [r["videos/observation.images.cam/from_timestamp"] for r in reader.rows] == [0, 0, 0, 0]
    for ep, (frames, actions) in zip(reader.episodes(["action"], ["observation.images.cam"]), episodes, strict=True):
        np.testing.assert_array_equal(ep.values["action"], actions)
        assert ep.images["observation.images.cam"].shape == frames.shape
    # appending goes on after the last file an episode refers to
    more = LeRobotWriter(tmp_path, fps=10, robot_type="x", features=features)
    more.add_episode("task 0", {"observation.images.cam": episodes[0][0], "action": episodes[0][1]})
    more.close()
    last = LeRobotReader(tmp_path).rows[-1]
    assert (last["data/file_index"], last["videos/observation.images.cam/file_index"], last["meta/episodes/file_index"]) == (4, 4, 1)


def test_hf_datasets_loads_it_as_lerobot_does(dataset: tuple[Path, list[Any]]) -> None:
    """lerobot 0.4-0.6 reads data/ with ``datasets.Dataset.from_parquet(path, features=...)`` built from info.json
    (``get_hf_features_from_features``): Value for shape [1], Sequence(length=D) otherwise. Runs where
    ``datasets`` is installed (not a dev dependency; checked by hand with datasets 5.2)."""
    datasets = pytest.importorskip("datasets")
    root, kept = dataset
    info = json.loads((root / "meta/info.json").read_text())
    features = datasets.Features({
        key: datasets.Value(dtype=f["dtype"]) if f["shape"] == [1]
        else datasets.Sequence(length=f["shape"][0], feature=datasets.Value(dtype=f["dtype"]))
        for key, f in info["features"].items() if f["dtype"] != "video"})
    data = datasets.Dataset.from_parquet(str(root / "data/chunk-000/file-000.parquet"), features=features)
    assert len(data) == info["total_frames"]
    np.testing.assert_array_equal(np.asarray(data.with_format("numpy")["action"]), np.concatenate([ep.actions for ep in kept]))
    episodes = datasets.Dataset.from_parquet(str(root / "meta/episodes/chunk-000/file-000.parquet"))
    assert episodes["tasks"] == [[ep.instruction] for ep in kept]


def test_an_interrupted_collection_keeps_what_it_recorded(tmp_path: Path) -> None:
    from policies.lerobot.reader import LeRobotReader
    from policies.vla.data import CollectConfig, collect

    def stop(ep: Any) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the first episode

    with pytest.raises(KeyboardInterrupt):
        collect(CollectConfig(tasks=("reach",), episodes=3, image_size=32, noise_m=0.0, image_every=1, format="lerobot",
                              out_dir=str(tmp_path)), stop)
    reader = LeRobotReader(tmp_path)
    assert reader.info["total_episodes"] == 1 and [r["agentrt_seed"] for r in reader.rows] == [0]
