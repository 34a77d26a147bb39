"""The robot bridge end to end over tcp with CURVE: `agentrt bridge --dry-run` in a subprocess, a client here."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agentrt.curve import client_setup, make_keys
from agentrt.errors import ConfigError
from agentrt.messages import ActionChunk, RobotState, now_ns
from agentrt.transport import Publisher, Subscriber
from sims.real.arm import BusArm
from sims.real.bridge import BridgeConfig, RobotBridge
from sims.real.bus import BusError
from sims.real.emulator import PtyBusEmulator

from .conftest import arm_config

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def bridge_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, str, Path, queue.Queue[str]]]:
    keys = make_keys(tmp_path / "keys")
    command = [sys.executable, "-m", "agentrt.cli", "bridge", "--arm", "so100", "--dry-run", "--keys", str(keys),
               "--bind", "127.0.0.1", "--state-port", "0", "--actions-port", "0", "--release-after-ms", "60000"]
    err_file = (tmp_path / "bridge.err").open("w")  # a file, not a pipe: the dry run logs every write
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=err_file, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            proc.kill()
            proc.wait(timeout=10)
            pytest.fail(f"the bridge did not start: {(tmp_path / 'bridge.err').read_text()[-2000:]}")
        found = re.search(r"listening: state (\S+) actions (\S+)", line)
        assert found, line
        yield proc, found.group(1), found.group(2), keys, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
        err_file.close()


def _state(sub: Subscriber, timeout_ms: int = 5000) -> RobotState:
    message = sub.recv(timeout_ms=timeout_ms)
    assert isinstance(message, RobotState), message
    return message


def test_the_bridge_serves_state_and_executes_chunks_over_tcp_with_curve(
    bridge_process: tuple[subprocess.Popen[str], str, str, Path, queue.Queue[str]], tmp_path: Path
) -> None:
    proc, state_address, actions_address, keys, lines = bridge_process
    setup = client_setup(keys)
    with Subscriber(state_address, socket_setup=setup) as states, \
            Publisher(actions_address, lossless=True, bind=False, socket_setup=setup) as actions:
        first = _state(states)
        assert first.robot == "so100" and first.joint_positions.shape == (5,) and first.ee_pose.shape == (7,)
        # 10 steps: at max_ee_speed_m_s (0.15 m/s, 5 mm a step) the tool point needs 7 to get there.
        target = np.array([[0.05, 0.05, 0.05, 0.05, 0.05, 1.0]] * 10, np.float32)
        actions.send(ActionChunk("so100", 0, 7, now_ns(), "joint_target", target, 33.3))
        for _ in range(200):
            state = _state(states)
            if np.allclose(state.joint_positions, 0.05, atol=2e-3):
                break
        else:
            pytest.fail(f"the chunk was not executed: joints {state.joint_positions}")
        assert state.seq > first.seq

    # A client whose key is not in keys/authorized gets nothing.
    stranger = make_keys(tmp_path / "stranger")
    with Subscriber(state_address, socket_setup=client_setup(keys, client_key=stranger / "client.key_secret")) as sub:
        assert sub.recv(timeout_ms=800) is None

    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    err = (tmp_path / "bridge.err").read_text()
    out = ""
    while "stopped;" not in out:  # what the bridge printed after "listening"; the reader ends at EOF
        try:
            out += lines.get(timeout=10)
        except queue.Empty:
            break
    assert proc.returncode == 0, err[-2000:]
    assert "dry run: SYNC_WRITE goal_position (addr 42, 2 B): 1=2081 2=2081 3=2081 4=2081 5=2081 6=2048" in err
    # Torque off is the last thing written (SIGTERM -> disconnect).
    assert err.rindex("SYNC_WRITE torque_enable (addr 40, 1 B): 1=0 2=0 3=0 4=0 5=0 6=0") > err.rindex("goal_position")
    assert "stopped;" in out and "1 chunks executed" in out


def test_the_bridge_stops_with_a_clear_error_when_the_bus_is_unplugged(tmp_path: Path) -> None:
    from sims.real.arms import get_arm
    from sims.real.calibration import nominal_calibration

    calibration = nominal_calibration(get_arm("so100")).save(tmp_path / "cal.json")
    with PtyBusEmulator("feetech", ids=[1, 2, 3, 4, 5, 6]) as emulator:
        arm = BusArm(arm_config("feetech", emulator.port, calibration))
        bridge = RobotBridge(arm, BridgeConfig(bind="127.0.0.1", state_port=0, actions_port=0, insecure=True))
        stop = threading.Event()
        errors: list[Exception] = []

        def serve() -> None:
            try:
                bridge.run(stop)
            except Exception as exc:  # handed to the test thread
                errors.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            assert bridge.ready.wait(20)
            with Subscriber(bridge.state_address) as states:
                _state(states)
            emulator.unplug()
            thread.join(timeout=20)
        finally:
            stop.set()
            thread.join(timeout=20)
    assert len(errors) == 1 and isinstance(errors[0], BusError) and errors[0].port_lost
    assert "torque off could not be sent" in str(errors[0])
    assert not arm.is_connected


def test_the_bridge_refuses_tcp_without_keys() -> None:
    with pytest.raises(ConfigError, match=r"needs CURVE keys: run `agentrt keys keys/`"):
        BridgeConfig()


def test_remote_robot_node_forwards_chunks_to_the_bridge_and_its_state_back() -> None:
    from agentrt.testing import MockNode, frames_of
    from sims.real.arm import BusArmConfig
    from sims.real.remote import RemoteRobotNode

    arm = BusArm(BusArmConfig(robot="so100", dry_run=True, watchdog_thread=False))
    bridge = RobotBridge(arm, BridgeConfig(bind="127.0.0.1", state_port=0, actions_port=0, insecure=True))
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,))
    thread.start()
    try:
        assert bridge.ready.wait(20)
        state_port = int(bridge.state_address.rsplit(":", 1)[1])
        actions_port = int(bridge.actions_address.rsplit(":", 1)[1])
        node = MockNode(RemoteRobotNode, params={"address": "127.0.0.1", "state_port": state_port,
                                             "actions_port": actions_port, "insecure": True})
        try:
            target = np.array([[0.05] * 5 + [0.0]] * 10, np.float32)  # 7 steps at the tool speed limit
            node.run(inputs=[("actions", ActionChunk("so100", 0, 0, 0, "joint_target", target, 33.3))])
            for _ in range(500):
                states = frames_of(node.run(ticks=1), "state")
                if states and np.allclose(states[-1].joint_positions, 0.05, atol=2e-3):
                    break
                stop.wait(0.01)
            else:
                pytest.fail("no state from the bridge showed the chunk executed")
        finally:
            node.close()
    finally:
        stop.set()
        thread.join(timeout=20)
    assert bridge.chunks == 1 and not arm.is_connected


def test_the_bridge_counts_every_malformed_message_and_each_executed_chunk_once() -> None:
    """Item 15.12: malformed messages of every kind reach the bridge's counters; executed chunks count once."""
    import zmq

    from agentrt import wire
    from agentrt.messages import Telemetry
    from sims.real.arm import BusArmConfig

    arm = BusArm(BusArmConfig(robot="so100", dry_run=True, watchdog_thread=False))
    bridge = RobotBridge(arm, BridgeConfig(bind="127.0.0.1", state_port=0, actions_port=0, insecure=True))
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,))
    thread.start()
    raw = zmq.Context.instance().socket(zmq.PUSH)
    raw.setsockopt(zmq.LINGER, 0)
    try:
        assert bridge.ready.wait(20)
        raw.connect(bridge.actions_address)
        for i in range(5):
            raw.send(b"not a message %d" % i)  # undecodable
        raw.send(wire.encode(Telemetry("x", 0, 0)))  # not an ActionChunk
        raw.send(wire.encode(ActionChunk("so100", 0, -1, 0, "fly", np.zeros((1, 6), np.float32), 33.3)))  # bad kind
        raw.send(wire.encode(ActionChunk("koch", 1, -1, 0, "joint_target", np.zeros((1, 6), np.float32), 33.3)))
        raw.send(wire.encode(ActionChunk("so100", 2, -1, 0, "joint_target", np.zeros((2, 9), np.float32), 33.3)))
        target = np.array([[0.02, 0.0, 0.0, 0.0, 0.0, 0.0]] * 10, np.float32)
        raw.send(wire.encode(ActionChunk("so100", 3, -1, 0, "joint_target", target, 33.3)))
        with Subscriber(bridge.state_address) as states:
            for _ in range(300):
                if abs(_state(states).joint_positions[0] - 0.02) < 2e-3:
                    break
            else:
                pytest.fail("the good chunk was not executed")
    finally:
        raw.close()
        stop.set()
        thread.join(timeout=20)
    assert bridge.malformed == 7 and bridge.refused == 1
    assert bridge.chunks == 1  # the one with the wrong width reached the arm and was refused, or was replaced
    assert "7 malformed messages, 1 chunks for another robot" in bridge.counters()
