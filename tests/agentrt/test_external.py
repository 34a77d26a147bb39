"""Outside programs reach a launched graph through the endpoints its launch file names under ``external:``."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import zmq

from agentrt.errors import LaunchError
from agentrt.launch import load_launch
from agentrt.nodehost import plan_nodes

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "graph.yaml"
    path.write_text(text)
    return path


GRAPH = """\
nodes:
  camera:
    class: agentrt.nodes.synthetic:SyntheticFrameNode
    rate_hz: 30
    params: {{width: 192, height: 128}}
  policy:
    class: agentrt.nodes.echo:EchoNode
    inputs: {{frames: camera.frames}}
external:
  camera.frames: {frames}
  policy.actions: {actions}
"""


def test_external_outputs_are_bound_at_their_endpoint_and_internal_readers_use_it(tmp_path: Path) -> None:
    frames, actions = f"ipc://{tmp_path}/out/frames", "tcp://0.0.0.0:7711"
    spec = load_launch(write(tmp_path, GRAPH.format(frames=frames, actions=actions)))
    assert spec.external == {("camera", "frames"): frames, ("policy", "actions"): actions}
    plans = plan_nodes(spec, "local", tmp_path / "run", "ipc://control")
    assert plans["camera"]["outputs"]["frames"]["address"] == frames
    assert plans["policy"]["inputs"]["frames"]["address"] == frames
    actions_plan = plans["policy"]["outputs"]["actions"]
    assert actions_plan["address"] == actions and actions_plan["wired"]  # bound although no node reads it


@pytest.mark.parametrize(
    ("external", "line", "words"),
    [
        ("  camera: tcp://127.0.0.1:7700", 9, "must be node.output"),
        ("  robot.frames: tcp://127.0.0.1:7700", 9, "there is no node 'robot'"),
        ("  camera.images: tcp://127.0.0.1:7700", 9, "has outputs frames"),
        ("  camera.frames: http://127.0.0.1:7700", 9, "tcp://HOST:PORT or ipc:///absolute/path"),
        ("  camera.frames: tcp://127.0.0.1", 9, "tcp://HOST:PORT"),
        ("  camera.frames: tcp://127.0.0.1:99999", 9, "port 1..65535"),
        ("  camera.frames: ipc://relative/path", 9, "ipc:///absolute/path"),
        ("  camera.frames: ipc:///" + "x" * 120, 9, "too long"),
        ("  camera.frames: 7700", 9, "tcp://HOST:PORT"),
        ("  camera.frames: tcp://127.0.0.1:7700\n  policy.actions: tcp://127.0.0.1:7700", 10,
         "also used by 'camera.frames'"),
    ],
)
def test_bad_external_entries_name_file_and_line(tmp_path: Path, external: str, line: int, words: str) -> None:
    path = write(tmp_path, f"""\
nodes:
  camera:
    class: agentrt.nodes.synthetic:SyntheticFrameNode
  policy:
    class: agentrt.nodes.echo:EchoNode
    inputs: {{frames: camera.frames}}
    params: {{robot: arm}}
external:
{external}
""")
    with pytest.raises(LaunchError) as info:
        load_launch(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message and "\n" not in message


def test_external_wires_that_would_break_the_graph_are_refused(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    lossless_taken = f"""\
nodes:
  camera: {{class: agentrt.nodes.synthetic:SyntheticFrameNode}}
  policy: {{class: agentrt.nodes.echo:EchoNode, inputs: {{frames: camera.frames}}}}
  robot: {{class: agentrt.nodes.sink:ActionSinkNode, inputs: {{actions: policy.actions}}}}
external:
  policy.actions: tcp://127.0.0.1:{free_port()}
"""
    with pytest.raises(LaunchError, match="lossless output 'policy.actions' already feeds"):
        load_launch(write(tmp_path, lossless_taken))
    two_hosts = """\
hosts: {local: {address: 127.0.0.1}, robot: {address: 127.0.0.1}}
keys: keys/
base_port: 7600
nodes:
  camera: {class: agentrt.nodes.synthetic:SyntheticFrameNode}
  policy: {class: agentrt.nodes.echo:EchoNode, inputs: {frames: camera.frames}, host: robot}
external:
  %s
"""
    with pytest.raises(LaunchError, match="goes to host 'robot'.*tcp://127.0.0.1:7600"):
        load_launch(write(tmp_path, two_hosts % "camera.frames: tcp://127.0.0.1:7800"))
    # camera.frames crosses hosts on base_port + 0: an outside endpoint may not take that port
    with pytest.raises(LaunchError, match="7600 is the port of the wire 'camera.frames'"):
        load_launch(write(tmp_path, two_hosts % "policy.actions: tcp://127.0.0.1:7600"))
    spec = load_launch(write(tmp_path, two_hosts % "policy.actions: tcp://127.0.0.1:7601"))
    assert spec.external == {("policy", "actions"): "tcp://127.0.0.1:7601"}  # ports are per output, not per wire


def doc_client() -> dict:
    code = DOC.read_text().split("## 9. A client with plain pyzmq", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "protocol.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


def test_an_outside_plain_pyzmq_client_reads_a_launched_graph(tmp_path: Path) -> None:
    """`agentrt run` a graph with external endpoints; the doc's client and a plain PULL read them."""
    frames, actions = f"ipc://{tmp_path}/out/camera.frames", f"tcp://127.0.0.1:{free_port()}"
    path = write(tmp_path, GRAPH.format(frames=frames, actions=actions))
    env = {**os.environ, "AGENTRT_RUN_DIR": str(tmp_path / "run")}
    run = subprocess.Popen(
        [sys.executable, "-m", "agentrt.cli", "run", str(path), "--no-status", "--duration", "120",
         "--report-dir", str(tmp_path / "runs")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    pull = zmq.Context.instance().socket(zmq.PULL)
    try:
        received = doc_client()["receive_frames"](frames, 3, timeout_s=60)  # 192x128x3: in shared memory
        pull.setsockopt(zmq.LINGER, 0)
        pull.connect(actions)
        assert pull.poll(60_000), "no ActionChunk on the external lossless endpoint"
        chunk = pull.recv()
    finally:
        pull.close()
        run.send_signal(signal.SIGINT)
        try:
            output, _ = run.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            output, _ = run.communicate()
    assert [image.shape for _seq, image, _age in received] == [(128, 192, 3)] * 3
    magic, version, kind = struct.unpack_from("<4sBB", chunk)
    assert (magic, version, kind) == (b"AGRT", 1, 3)  # an ActionChunk, as protocol §3 describes
    assert run.returncode == 0, output
    assert not Path(frames[len("ipc://"):]).exists()  # the node removed its socket file at the end
    assert f"external: camera.frames on {frames} (Frame, latest-only" in output
    assert f"external: policy.actions on {actions} (ActionChunk, lossless" in output


@pytest.mark.parametrize("doc", ["protocol.md", "runtime.md"])
def test_the_documented_external_sections_are_valid_on_the_demo(tmp_path: Path, doc: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from agentrt.cli.__main__ import main

    text = (ROOT / "docs" / doc).read_text()
    block = next(b for b in text.split("```yaml")[1:] if "external:" in b.split("```")[0]).split("```")[0]
    path = write(tmp_path, (ROOT / "launch" / "pipeline_demo.yaml").read_text() + textwrap.dedent(block))
    assert main(["run", str(path), "--check"]) == 0
    endpoint = load_launch(path).external[("camera", "frames")]
    assert f"external: camera.frames on {endpoint} (Frame, latest-only" in capsys.readouterr().out
