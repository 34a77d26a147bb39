"""`start_after`: a node is started only once the nodes it names are ready (a camera after its recorder)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agentrt.errors import LaunchError
from agentrt.launch import load_launch
from agentrt.supervisor import Supervisor, SupervisorConfig

SLOW_CONSUMER = """
name: gated
nodes:
  camera:
    class: agentrt.nodes.synthetic:SyntheticFrameNode
    rate_hz: 50
    params: {width: 32, height: 24}
    start_after: [policy]
  policy:
    class: agentrt.nodes.echo:EchoNode
    inputs: {frames: camera.frames}
    params: {warmup_s: 1.5}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "launch.yaml"
    path.write_text(text)
    return path


def test_a_node_starts_only_once_the_nodes_it_starts_after_are_ready(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_RUN_DIR", str(tmp_path / "run"))
    supervisor = Supervisor(load_launch(write(tmp_path, SLOW_CONSUMER)), output=lambda line: None,
                            config=SupervisorConfig(heartbeat_ms=50))
    seen: list[tuple[str, bool]] = []  # (the policy's state, was the camera started yet)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            camera, policy = supervisor.procs["camera"], supervisor.procs["policy"]
            seen.append((policy.state, bool(camera.pids)))
            done.wait(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert supervisor.run(duration_s=3.5) == 0
    finally:
        done.set()
        watcher.join()
    assert any(state == "starting" for state, _ in seen)  # the policy's 1.5 s warm-up was watched
    assert not any(started for state, started in seen if state in ("waiting", "starting"))
    assert supervisor.procs["camera"].pids, "the camera never started"
    assert supervisor.telemetry.summary()["nodes"]["policy"]["received"] > 0  # frames went through once it did


@pytest.mark.parametrize(("text", "words"), [
    ("    start_after: [nobody]\n", "starts after 'nobody', which is not a node"),
    ("    start_after: [camera]\n", "starts after 'camera', which is itself"),
])
def test_start_after_names_other_nodes(tmp_path: Path, text: str, words: str) -> None:
    bad = SLOW_CONSUMER.replace("    start_after: [policy]\n", text)
    with pytest.raises(LaunchError, match=words):
        load_launch(write(tmp_path, bad))


def test_start_after_in_a_circle_is_refused(tmp_path: Path) -> None:
    circle = SLOW_CONSUMER + "    start_after: [camera]\n"
    with pytest.raises(LaunchError, match="start_after goes round in a circle: camera -> policy -> camera"):
        load_launch(write(tmp_path, circle))
