"""CURVE between hosts (tcp on 127.0.0.1): authorised peers talk, others get nothing."""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq.auth

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
    class: agentrt.nodes.synthetic:SyntheticFrameNode
    rate_hz: 50
  policy:
    class: agentrt.nodes.echo:EchoNode
    inputs: {{frames: camera.frames}}
    host: robot
  robot:
    class: agentrt.nodes.sink:ActionSinkNode
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


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def public_key(key_file: Path) -> str:
    return zmq.auth.load_certificate(str(key_file))[0].decode("ascii")


def test_a_refused_key_reaches_the_servers_log_once_and_is_counted(
    keys: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    good, other = keys
    caplog.set_level(logging.WARNING, logger="agentrt.curve")
    server = server_setup(good, name="output 'frames'")
    stranger_key = public_key(other / "client.key")
    with Publisher("tcp://127.0.0.1:*", socket_setup=server) as pub:
        address = pub.bound_address
        for attempt in range(1, 6):  # five connections with the same unauthorised key
            with Subscriber(address, socket_setup=client_setup(good, client_key=other / "client.key_secret")):
                assert wait_until(lambda: server.refused >= attempt)  # noqa: B023 - waited on in this iteration
        with Subscriber(address, socket_setup=client_setup(good)) as friend:
            assert receive_any(friend, pub, 3.0) > 0
        shutil.copy(other / "client.key", good / "authorized" / "other.key")  # admitted from now on, no restart
        with Subscriber(address, socket_setup=client_setup(good, client_key=other / "client.key_secret")) as late:
            assert receive_any(late, pub, 3.0) > 0
    assert server.refused == 5
    lines = [r.getMessage() for r in caplog.records if r.name == "agentrt.curve" and r.levelno >= logging.WARNING]
    refusals = [line for line in lines if "refused" in line]
    assert len(refusals) == 1, refusals
    assert stranger_key in refusals[0] and "output 'frames'" in refusals[0] and str(good / "authorized") in refusals[0]
    assert public_key(good / "client.key") not in " ".join(lines)


def test_a_client_hears_why_a_server_will_not_talk_to_it(keys: tuple[Path, Path]) -> None:
    good, other = keys
    with Publisher("tcp://127.0.0.1:*", socket_setup=server_setup(good)) as pub:
        address = pub.bound_address
        refused = client_setup(good, client_key=other / "client.key_secret", watch=True)
        wrong_server = client_setup(other, client_key=good / "client.key_secret", watch=True)  # other's server.key
        friend = client_setup(good, watch=True)
        heard: dict[str, list[str]] = {"refused": [], "wrong_server": [], "friend": []}
        with (
            Subscriber(address, socket_setup=refused),
            Subscriber(address, socket_setup=wrong_server),
            Subscriber(address, socket_setup=friend),
        ):

            def both_heard() -> bool:
                heard["refused"] += refused.refusals()
                heard["wrong_server"] += wrong_server.refusals()
                return bool(heard["refused"] and heard["wrong_server"])

            assert wait_until(both_heard), heard
            heard["friend"] += friend.refusals()
        for client in (refused, wrong_server, friend):
            client.close()
    assert len(heard["refused"]) == 1
    assert address in heard["refused"][0] and public_key(other / "client.key") in heard["refused"][0]
    assert "authorized" in heard["refused"][0]
    assert len(heard["wrong_server"]) == 1
    assert address in heard["wrong_server"][0] and str(other / "server.key") in heard["wrong_server"][0]
    assert heard["friend"] == []


def test_a_two_hosts_run_whose_client_key_is_refused_fails_with_one_clear_line(tmp_path: Path) -> None:
    good = make_keys(tmp_path / "keys")
    other = make_keys(tmp_path / "other")
    robot_keys = tmp_path / "robot_keys"  # the robot host got the right server key but a client key never authorised
    shutil.copytree(good, robot_keys)
    for name in ("client.key", "client.key_secret"):
        shutil.copy(other / name, robot_keys / name)
    port = free_port()
    text = """
hosts:
  local: {{address: 127.0.0.1}}
  robot: {{address: 127.0.0.1}}
keys: {keys}
base_port: {port}
nodes:
  camera:
    class: agentrt.nodes.synthetic:SyntheticFrameNode
    rate_hz: 50
  policy:
    class: agentrt.nodes.echo:EchoNode
    inputs: {{frames: camera.frames}}
    host: robot
    restart: never
"""
    (tmp_path / "local.yaml").write_text(text.format(keys="keys", port=port))
    (tmp_path / "robot.yaml").write_text(text.format(keys="robot_keys", port=port))
    config = SupervisorConfig(heartbeat_ms=100, telemetry_ms=100)
    local_lines: list[str] = []
    local = Supervisor(load_launch(tmp_path / "local.yaml"), host="local", config=config, output=local_lines.append)
    robot = Supervisor(load_launch(tmp_path / "robot.yaml"), host="robot", config=config, output=lambda line: None)
    codes: dict[str, int] = {}
    threads = [threading.Thread(target=lambda s=s, n=n: codes.__setitem__(n, s.run(duration_s=60)), daemon=True)
               for n, s in (("local", local), ("robot", robot))]
    for thread in threads:
        thread.start()
    try:
        threads[1].join(timeout=60)  # the robot host ends by itself: its only node failed
        assert codes.get("robot") == 1
        assert "node 'policy' failed" in robot.failure
        assert "refused this host's CURVE key" in robot.failure and public_key(other / "client.key") in robot.failure
        assert wait_until(lambda: local.telemetry.total("refused") >= 1)
    finally:
        local.request_stop()
        threads[0].join(timeout=20)
    assert codes.get("local") == 0  # refusing a stranger is the server doing its job
    assert robot.telemetry.total("refused") == 1
    refusals = [line for line in local_lines if "refused a CURVE client" in line]
    assert len(refusals) == 1 and refusals[0].startswith("[camera]") and public_key(other / "client.key") in refusals[0]
    assert not any(process_alive(pid) for s in (local, robot) for pid in s.all_pids())
