"""`agentrt run --rerun`: the rerun sink node, the latest-only copy of a lossless output it reads, and a
recording written by a real run, read back with rerun's own reader."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from agentrt.errors import ConfigError, LaunchError, MissingDependencyError
from agentrt.launch import load_launch
from agentrt.messages import ActionChunk, RobotState
from agentrt.nodehost import plan_nodes
from agentrt.nodes.rerun_sink import RerunSinkNode, add_rerun_sink, import_rerun
from agentrt.testing import MockNode, fake_frame

rr = pytest.importorskip("rerun", reason="rerun-sdk is not installed (pip install 'agentrt[rerun]')")


def rrd_rows(path: Path) -> Counter[str]:
    """Entity path -> rows logged, read back from a .rrd with the installed rerun's own reader."""
    rows: Counter[str] = Counter()
    try:
        from rerun.chunk import RrdReader  # rerun 0.41+
    except ImportError:  # 0.23 .. 0.40: the dataframe API
        import rerun.dataframe as dataframe

        table = dataframe.load_recording(str(path)).view(index="log_tick", contents="/**").select().read_all()
        for name in table.column_names:
            if ":" in name and not name.startswith("log_"):
                rows[name.split(":")[0]] += table.column(name).drop_null().length()
        return rows
    with warnings.catch_warnings():  # a file a server streamed has no footer: rerun says so, and reads it
        warnings.simplefilter("ignore")
        for chunk in RrdReader(str(path)).stream():
            rows[str(chunk.entity_path)] += chunk.num_rows
    return rows


def state(seq: int, instruction: str) -> RobotState:
    return RobotState("arm", seq, 2_000_000_000 + seq, np.arange(7, dtype=np.float64), np.zeros(7),
                      np.array([0.4, 0.0, 0.3, 0, 0, 0, 1.0]), 0.5, instruction=instruction, episode=0)


def chunk(seq: int, capture_ns: int) -> ActionChunk:
    return ActionChunk("arm", seq, seq, capture_ns, "ee_delta", np.full((4, 7), 0.1, np.float32), 50.0,
                       hops=[("sim", capture_ns + 1_000_000), ("policy", capture_ns + 30_000_000)])


def test_the_sink_logs_every_kind_and_the_instruction_once_per_change(tmp_path: Path) -> None:
    target = tmp_path / "out.rrd"
    harness = MockNode(RerunSinkNode, params={"target": str(target)})
    messages = [("frames", fake_frame(0)), ("state", state(0, "touch the red cube")),
                ("state", state(1, "touch the red cube")), ("actions", chunk(0, 1_000_000_000)),
                ("state", state(2, "push the blue cube"))]
    harness.run(inputs=messages)
    harness.close()
    node = harness.node
    assert node.logged == {"frames": 1, "states": 3, "instructions": 2, "chunks": 1}
    rows = rrd_rows(target)
    assert rows["/camera/fake"] == 1 and rows["/instruction"] == 2
    assert rows["/state/joints/6"] == 3 and rows["/state/gripper"] == 3 and rows["/actions/6"] == 1
    assert rows["/latency/sim"] == rows["/latency/policy"] == rows["/latency/sink"] == 1


def test_a_run_with_rerun_writes_a_recording_of_frames_state_chunks_instruction_and_latency(tmp_path: Path) -> None:
    target = tmp_path / "sim.rrd"
    result = subprocess.run(
        [sys.executable, "-m", "agentrt.cli", "run", "sim.yaml", "--duration", "60", "--no-status",
         "--set", "sim.episodes=1", "--set", "sim.video_path=null", "--set", "sim.results_path=null",
         "--report-dir", str(tmp_path / "runs"), "--rerun", str(target)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "frames <- sim.frames, state <- sim.state, actions <- policy.actions" in result.stdout
    rows = rrd_rows(target)
    for path in ("/camera/scene", "/state/joints/0", "/state/gripper", "/actions/0", "/instruction",
                 "/latency/policy", "/latency/sink"):
        assert rows[path] > 0, (path, sorted(rows))


def test_a_lossless_output_feeds_one_lossless_reader_and_latest_only_copies(tmp_path: Path) -> None:
    spec = load_launch("pipeline_demo.yaml")
    wires = add_rerun_sink(spec, str(tmp_path / "x.rrd"), "local")
    assert wires == ["frames <- camera.frames", "actions <- policy.actions"]  # no robot state in this graph
    assert spec.lossless_readers("policy", "actions") == [("robot", "actions")]
    assert spec.copy_readers("policy", "actions") == [("rerun", "actions")]
    plans = plan_nodes(spec, "local", tmp_path / "run", "ipc://control")
    out = plans["policy"]["outputs"]["actions"]
    assert out["lossless"] and out["wired"] and out["copy"].endswith("policy.actions.latest")
    assert plans["rerun"]["inputs"]["actions"] == {"address": out["copy"], "lossless": False, "curve": False}
    assert plans["robot"]["inputs"]["actions"]["address"] == out["address"]
    assert plans["camera"]["outputs"]["frames"]["copy"] is None  # latest-only outputs need no copy
    with pytest.raises(ConfigError, match="has one"):
        add_rerun_sink(spec, str(tmp_path / "x.rrd"), "local")


def test_a_copy_reader_on_another_host_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "far.yaml"
    path.write_text(
        "hosts:\n  gpu: {address: 127.0.0.1}\nkeys: keys\n"
        "nodes:\n  cam:\n    class: agentrt.nodes.synthetic:SyntheticFrameNode\n"
        "  policy:\n    class: agentrt.nodes.echo:EchoNode\n    inputs: {frames: cam.frames}\n"
        "  robot:\n    class: agentrt.nodes.sink:ActionSinkNode\n    inputs: {actions: policy.actions}\n"
        "  log:\n    class: agentrt.nodes.rerun_sink:RerunSinkNode\n    host: gpu\n"
        "    inputs: {actions: policy.actions}\n"
    )
    with pytest.raises(LaunchError, match="copies stay on one host"):
        load_launch(path)


def test_a_bad_target_and_a_missing_sdk_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"ending in \.rrd or a viewer address"):
        RerunSinkNode.Config(target="out.txt")
    monkeypatch.setitem(sys.modules, "rerun", None)  # import rerun -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'agentrt\[rerun\]'"):
        import_rerun()


def test_a_live_viewer_address_receives_the_log(tmp_path: Path) -> None:
    """Logs to a headless rerun server on loopback (``rerun --save``: what it receives goes to a file)."""
    cli = Path(sys.executable).parent / "rerun"
    if not cli.exists():
        pytest.skip("the rerun command (rerun-sdk's viewer) is not installed beside this Python")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    saved = tmp_path / "live.rrd"
    server = subprocess.Popen([str(cli), "--bind", "127.0.0.1", "--port", str(port), "--save", str(saved)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "RERUN_ANALYTICS": "0"})
    try:
        assert server.stderr is not None
        for line in server.stderr:  # ready once it listens
            if "Listening" in line:
                break
        harness = MockNode(RerunSinkNode, params={"target": f"rerun+http://127.0.0.1:{port}/proxy"})
        harness.run(inputs=[("state", state(i, "touch the red cube")) for i in range(3)])
        harness.close()  # flushes and disconnects: the server has it all
        time.sleep(0.5)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)
    rows = rrd_rows(saved)
    assert rows["/state/joints/0"] == 3 and rows["/instruction"] == 1
