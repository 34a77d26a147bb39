"""SourceNode and RecorderNode: in-process, and the shipped launch file through `agentrt run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt.errors import ConfigError, SourceError
from agentrt.launch import load_launch
from agentrt.messages import Frame, Message, now_ns
from agentrt.testing import MockNode
from streams import Recorder, RecorderConfig, read_sidecar, read_stamp
from streams.node import RecorderNode, SourceNode, SourceNodeConfig

from .conftest import stamped_images

LAUNCH = Path(__file__).resolve().parents[2] / "launch" / "stream_record.yaml"


class CountingIO:
    """A real-time NodeIO that asks the node to stop after ``limit`` messages were sent."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[tuple[str, Message]] = []

    def clock_ns(self) -> int:
        return now_ns()

    def poll(self, timeout_ns: int) -> list[tuple[str, Message]]:
        return []

    def send(self, output: str, message: Message) -> None:
        self.sent.append((output, message))

    def stop_reason(self) -> str:
        return "enough" if len(self.sent) >= self.limit else ""

    def beat(self) -> None:
        pass

    def armed(self) -> bool:
        return True

    def report(self, state: str) -> None:
        pass


def run_source_node(limit: int, **params: object) -> tuple[SourceNode, list[Frame]]:
    io = CountingIO(limit)
    node = SourceNode(SourceNodeConfig(**params), name="camera", io=io)  # type: ignore[arg-type]
    node.setup()
    try:
        node.run()
    finally:
        node.teardown()
    return node, [m for _, m in io.sent if isinstance(m, Frame)]


def test_source_node_publishes_any_source_by_config(clip: Path, photos: Path, tmp_path: Path) -> None:
    _, frames = run_source_node(5, source={"type": "synthetic", "width": 160, "height": 128, "fps": 200},
                                stream="cam0")
    assert len(frames) == 5 and frames[0].stream == "cam0" and frames[0].hops[0][0] == "camera"
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)
    _, frames = run_source_node(100, source=str(clip), params={"realtime": False})
    assert [read_stamp(f.image) for f in frames] == list(range(30))  # the file ended: the node stopped
    _, frames = run_source_node(3, source=f"folder:{photos}", params={"fps": 0})
    assert frames[0].image.shape == (128, 128, 3)
    _, frames = run_source_node(3, source={"type": "camera", "device": str(clip)})
    assert frames[0].image.shape == (128, 160, 3)
    recording = tmp_path / "rec.mp4"
    with Recorder(RecorderConfig(path=str(recording))) as recorder:
        for frame in frames:
            recorder.write(frame)
    _, replayed = run_source_node(10, source=f"player:{recording}", params={"speed": 0})  # all, no pacing
    assert len(replayed) == 3 and replayed[0].image.shape == (128, 160, 3)


def test_source_node_config_is_validated_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown field"):
        SourceNodeConfig(source={"type": "synthetic", "colour": "red"})
    with pytest.raises(ConfigError, match="on_end"):
        SourceNodeConfig(on_end="explode")
    config = SourceNodeConfig(source=str(tmp_path / "missing.mp4"))  # no I/O yet: fails at setup
    node = SourceNode(config, name="camera", io=CountingIO(1))
    with pytest.raises(SourceError, match="no such file"):
        node.setup()
    node.teardown()


def test_recorder_node_records_what_arrives(tmp_path: Path) -> None:
    path = tmp_path / "out" / "rec.mp4"
    images = stamped_images(6)
    with MockNode(RecorderNode, params={"path": str(path)}) as harness:
        harness.run(inputs=[("frames", Frame("cam", s, now_ns(), images[i])) for i, s in enumerate([0, 1, 2, 4, 5])])
        assert harness.node.missed == 1  # seq 3 never arrived
    assert [s for s, _ in read_sidecar(path)] == [0, 1, 2, 4, 5]


def test_stream_record_launch_file_validates_and_runs(tmp_path: Path) -> None:
    spec = load_launch(LAUNCH)
    assert set(spec.nodes) == {"camera", "recorder"}
    env = {**os.environ, "AGENTRT_RUN_DIR": str(tmp_path / "run")}
    result = subprocess.run(
        [sys.executable, "-m", "agentrt.cli", "run", str(LAUNCH), "--duration", "3", "--no-status",
         "--set", "camera.source=synthetic:160x128@30"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = read_sidecar(tmp_path / "runs" / "stream_record.mp4")
    assert len(rows) > 10 and [s for s, _ in rows] == sorted(s for s, _ in rows)
