"""CURVE between hosts (tcp on 127.0.0.1): authorised peers talk, others get nothing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agentrt.cli.__main__ import main
from agentrt.curve import client_setup, make_keys, server_setup, stop_authenticator
from agentrt.errors import ConfigError
from agentrt.launch import load_launch
from agentrt.messages import Frame, now_ns
from agentrt.supervisor import Supervisor, SupervisorConfig
from agentrt.testing import process_alive
from agentrt.transport import Publisher, Subscriber


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    good = make_keys(tmp_path / "keys")
    other = make_keys(tmp_path / "other")  # a valid key pair that the server never authorised
    yield good, other
    stop_authenticator()


def receive_any(sub: Subscriber, pub: Publisher, seconds: float) -> int:
    """Send frames for ``seconds``; how many did ``sub`` get?"""
    got = 0
    deadline = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < deadline:
        pub.send(Frame("cam", seq, now_ns(), np.zeros((4, 4, 1), np.uint8)))
        seq += 1
        if sub.recv(timeout_ms=20) is not None:
            got += 1
    return got


def test_authorised_client_talks_and_others_get_nothing(keys: tuple[Path, Path]) -> None:
    good, other = keys
    address = f"tcp://127.0.0.1:{free_port()}"
    with Publisher(address, socket_setup=server_setup(good)) as pub:
        with Subscriber(address, socket_setup=client_setup(good)) as friend:
            assert receive_any(friend, pub, 3.0) > 0
        with Subscriber(address, socket_setup=client_setup(good, client_key=other / "client.key_secret")) as stranger:
            assert receive_any(stranger, pub, 1.0) == 0
        with Subscriber(address) as plain:  # no CURVE at all
            assert receive_any(plain, pub, 1.0) == 0


def test_keys_command_and_refuses_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", str(tmp_path / "k")]) == 0
    assert (tmp_path / "k" / "authorized" / "client.key").exists()
    assert (tmp_path / "k" / "server.key_secret").stat().st_mode & 0o077 == 0
    with pytest.raises(ConfigError, match="already holds keys"):
        make_keys(tmp_path / "k")
    with pytest.raises(ConfigError, match="is missing"):
        client_setup(tmp_path / "nothing")


def test_two_hosts_over_tcp_with_curve(tmp_path: Path) -> None:
    make_keys(tmp_path / "keys")
    launch = tmp_path / "two_hosts.yaml"
    launch.write_text(f"""
hosts:
  local: {{address: 127.0.0.1}}
  robot: {{address: 127.0.0.1}}
keys: keys
base_port: {free_port()}
nodes:
  camera:
    class: agentrt.nodes.synthetic:SyntheticSource
    rate_hz: 50
  policy:
    class: agentrt.nodes.echo:EchoPolicy
    inputs: {{frames: camera.frames}}
    host: robot
  robot:
    class: agentrt.nodes.sink:ActionSink
    inputs: {{actions: policy.actions}}
    host: robot
""")
    spec = load_launch(launch)
    config = SupervisorConfig(heartbeat_ms=100, telemetry_ms=100)
    local = Supervisor(spec, host="local", config=config, output=lambda line: None)
    robot = Supervisor(spec, host="robot", config=config, output=lambda line: None)
    assert set(local.procs) == {"camera"} and set(robot.procs) == {"policy", "robot"}
    threads = [threading.Thread(target=s.run, daemon=True) for s in (local, robot)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(robot.telemetry.traces) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(robot.telemetry.traces) >= 5
        assert [name for name, _ in robot.telemetry.traces[-1]] == ["capture", "camera", "policy", "robot"]
    finally:
        for s in (local, robot):
            s.request_stop()
        for thread in threads:
            thread.join(timeout=20)
    assert not any(process_alive(pid) for s in (local, robot) for pid in s.all_pids())


def test_node_command_for_a_host_without_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    demo = Path(__file__).resolve().parents[2] / "launch" / "pipeline_demo.yaml"
    assert main(["node", str(demo), "--host", "robot", "--duration", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no node is placed on host 'robot'" in err[0]
