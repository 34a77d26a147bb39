"""A node's process (agentrt.nodehost): what arrives bad or dropped on its wires reaches telemetry and the report."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from agentrt import wire
from agentrt.errors import ConfigError
from agentrt.messages import ActionChunk, Frame, Heartbeat, Telemetry, now_ns
from agentrt.node import Node, check_node, latest, lossless
from agentrt.nodehost import PLAN_ENV, NodeHost
from agentrt.telemetry import TelemetryCollector


def chunk(seq: int) -> ActionChunk:
    return ActionChunk("arm", seq, seq, now_ns(), "ee_delta", np.zeros((2, 7), np.float32), 10.0)


def malformed(count: int) -> list[bytes]:
    """``count`` messages every receiver must refuse: noise, truncated chunks, a wrong version byte."""
    rng = random.Random(15)
    good = bytes(wire.encode(chunk(0)))
    out = []
    for i in range(count):
        if i % 3 == 0:
            out.append(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200))))
        elif i % 3 == 1:
            out.append(good[: rng.randrange(1, len(good))])
        else:
            out.append(good[:4] + bytes([good[4] + 1]) + good[5:])
    return out


@pytest.fixture
def control(tmp_path: Path) -> Iterator[tuple[zmq.Socket, str]]:
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    address = f"ipc://{tmp_path}/control"
    sock.bind(address)
    yield sock, address
    sock.close()


def plan_for(name: str, cls: str, control: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "class": cls, "params": {}, "rate_hz": None, "arm_after": [], "trace": None,
            "inputs": inputs, "outputs": {}, "control": control, "keys_dir": None, "heartbeat_ms": 50,
            "telemetry_ms": 50, "supervisor_pid": os.getpid()}


def test_malformed_and_wrong_kind_messages_reach_telemetry_and_the_report(
    tmp_path: Path, control: tuple[zmq.Socket, str]
) -> None:
    control_socket, control_address = control
    actions_address = f"ipc://{tmp_path}/policy.actions"
    sender = zmq.Context.instance().socket(zmq.PUSH)  # stands in for a fuzzing upstream on a lossless wire
    sender.setsockopt(zmq.LINGER, 0)
    sender.setsockopt(zmq.SNDTIMEO, 10_000)
    sender.bind(actions_address)
    plan = plan_for("robot", "agentrt.nodes.sink:ActionSinkNode", control_address,
                    {"actions": {"address": actions_address, "lossless": True, "curve": False}})
    env = {**os.environ, PLAN_ENV: json.dumps(plan), "AGENTRT_RUN_DIR": str(tmp_path)}
    node = subprocess.Popen([sys.executable, "-m", "agentrt.nodehost"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    collector = TelemetryCollector("fuzz")
    last: dict[str, float] = {}
    try:
        for raw in malformed(37):
            sender.send(raw)
        for seq in range(2):  # valid messages, but not what this input takes
            sender.send(wire.encode(Frame("cam", seq, now_ns(), np.zeros((4, 4, 3), np.uint8))))
        for seq in range(3):
            sender.send(wire.encode(chunk(seq)))
        deadline = time.monotonic() + 30
        while last.get("in.actions.received", 0) < 3:  # lossless and in order: the good ones come last
            assert time.monotonic() < deadline, f"telemetry never showed the 3 chunks; last: {last}"
            if not control_socket.poll(100):
                continue
            message = wire.decode(control_socket.recv())
            if isinstance(message, Telemetry):
                collector.on_telemetry(message)
                if not message.metrics.get("trace"):
                    last = message.metrics
    finally:
        node.send_signal(signal.SIGTERM)
        _, err = node.communicate(timeout=20)
        sender.close()
    assert node.returncode == 0, err.decode()
    assert last["in.actions.bad"] == 37 and last["in.actions.wrong_kind"] == 2
    summary = collector.summary()
    assert summary["bad"] == 39 and summary["nodes"]["robot"]["bad"] == 39
    assert summary["nodes"]["robot"]["counts"] == {"in.actions.bad": 37, "in.actions.wrong_kind": 2}
    assert "bad 39" in collector.status_line()
    assert collector.count_lines() == ["robot: bad 39 (in.actions.bad 37, in.actions.wrong_kind 2)"]
    report = json.loads(collector.write_report(tmp_path / "report")[0].read_text())
    assert report["bad"] == 39 and report["nodes"]["robot"]["bad"] == 39
    assert err.decode().count("takes ActionChunk messages, got a Frame") == 1  # logged once, counted always


def test_a_nodes_own_counters_reach_its_telemetry_and_the_report(control: tuple[zmq.Socket, str]) -> None:
    class Judge(Node):
        inputs = {"chunks": lossless("ActionChunk")}

    control_socket, control_address = control
    host = NodeHost(plan_for("judge", "tests:Judge", control_address, {}))
    try:
        node = Judge(None, name="judge", io=host)
        node.stats.counters.update({"bad.wrong_robot": 3, "dropped.stale_chunk": 2, "episodes": 4})
        host.node = node
        host.flush_telemetry()
        assert control_socket.poll(5000)
        message = wire.decode(control_socket.recv())
    finally:
        host.close()
    assert isinstance(message, Telemetry)
    assert message.metrics["bad.wrong_robot"] == 3 and message.metrics["dropped.stale_chunk"] == 2
    collector = TelemetryCollector("own")
    collector.on_telemetry(message)
    judge = collector.summary()["nodes"]["judge"]
    assert (judge["bad"], judge["dropped"]) == (3, 2)
    assert judge["node_counters"] == {"bad.wrong_robot": 3, "dropped.stale_chunk": 2, "episodes": 4}
    assert collector.summary()["bad"] == 3


def test_an_input_port_must_name_a_known_message_kind() -> None:
    class Typo(Node):
        inputs = {"frames": latest("Frames")}

    with pytest.raises(ConfigError, match=r"Typo.inputs\['frames'\] carries 'Frames'"):
        check_node(Typo)


def _heartbeats(sock: zmq.Socket) -> list[Heartbeat]:
    out = []
    while sock.poll(200):
        message = wire.decode(sock.recv())
        if isinstance(message, Heartbeat):
            out.append(message)
    return out


def test_reading_stop_requested_sends_no_heartbeat_the_events_loop_does(control: tuple[zmq.Socket, str]) -> None:
    control_socket, control_address = control
    host = NodeHost(plan_for("quiet", "tests:Quiet", control_address, {}))
    try:
        node = Node(None, name="quiet", io=host)
        for _ in range(3):
            assert not node.stop_requested and host.stop_reason() == ""  # getters: no side effect
        assert _heartbeats(control_socket) == []
        events = node.events()
        host.request_stop("done")
        assert [type(e).__name__ for e in events] == ["Stop"]
        assert len(_heartbeats(control_socket)) == 1  # the loop beats, at its cadence
        node.beat()  # a node with its own loop says so explicitly (due: _heartbeats waited > heartbeat_ms)
        assert len(_heartbeats(control_socket)) == 1
    finally:
        host.close()
