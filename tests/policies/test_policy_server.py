"""The policy server on loopback: one batch per round of requests, each robot's chunk equal to its own policy's,
and robots that send garbage, stall or disconnect never block or corrupt the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from agentrt.bench.vla import RECORDED, load_observations
from agentrt.errors import ConfigError
from agentrt.messages import ActionChunk, Frame, RobotState
from agentrt.wire import decode, encode
from policies.vla.batch import BatchPolicy
from policies.vla.fleet import FleetClient
from policies.vla.policy import NanoPolicy, PolicyConfig, default_weights
from policies.vla.server import PolicyServer, PolicyServerNodeConfig

pytestmark = pytest.mark.skipif(not default_weights("ar").exists(), reason="no shipped weights")

ROUNDS = 4


@contextmanager
def serving(server: PolicyServer) -> Iterator[None]:
    """Open ``server`` and serve in a thread until the block ends; then close it."""
    server.open()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            server.serve(timeout_ms=20)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        server.close()


def request(robot: str, seq: int, observation: tuple[np.ndarray, np.ndarray, str], episode: int = 0) -> tuple[RobotState, Frame]:
    image, vector, instruction = observation
    pose = np.array([*vector[:3], 0.0, 0.0, 0.0, 1.0])
    state = RobotState("panda", seq, seq, np.zeros(7), np.zeros(7), pose, float(vector[3]), frame_seq=seq,
                       instruction=instruction, episode=episode)
    return state, Frame("scene", seq, 1000 + seq, np.ascontiguousarray(image))


def answer(client: FleetClient) -> ActionChunk:
    assert client.sock is not None and client.sock.poll(10_000), f"robot {client.robot_id} got no answer"
    reply = decode(client.sock.recv())
    assert isinstance(reply, ActionChunk)
    return reply


def garbage(state: RobotState, frame: Frame) -> list[list[bytes]]:
    """Truncated, wrong version, wrong parts, wrong kind, wrong shape (a 2-channel image said to be gray)."""
    good_state, good_frame = bytes(encode(state)), bytes(encode(frame))
    old = bytearray(good_frame)
    old[4] = 2  # protocol version 2
    two_channels = Frame("scene", frame.seq, frame.t_capture_ns, np.zeros((64, 64, 2), np.uint8), pixel_format="gray")
    return [[good_state, good_frame[:-7]], [good_state, bytes(old)], [good_state], [b"hello", b"world", b"!"],
            [good_frame, good_state], [good_state, bytes(encode(two_channels))]]


@pytest.fixture(scope="module")
def robots() -> dict[str, list[tuple[np.ndarray, np.ndarray, str]]]:
    observed = load_observations(RECORDED, episodes=1, max_plans=ROUNDS)
    return {f"robot-{task}": [(i, s, str(t)) for i, s, t in episodes[0]] for task, episodes in observed.items()}


def test_each_round_is_one_batch_and_misbehaving_robots_do_not_matter(tmp_path: Path, robots) -> None:
    config = PolicyConfig(decoding="consistency")
    shared = NanoPolicy(config)
    server = PolicyServer(PolicyServerNodeConfig(endpoint=f"ipc://{tmp_path}/server", window_ms=100.0),
                          BatchPolicy(shared))
    server.open()
    clients = {name: FleetClient(server.config.endpoint, name) for name in robots}
    stall, broken = FleetClient(server.config.endpoint, "stalls"), FleetClient(server.config.endpoint, "broken")
    gone = FleetClient(server.config.endpoint, "gone")
    own = {name: NanoPolicy(config, model=shared.model) for name in robots}
    try:
        first = next(iter(robots.values()))[0]
        stall.sock.send_multipart([encode(m) for m in request("stalls", 0, first)])  # asks once, never reads
        gone.sock.send_multipart([encode(m) for m in request("gone", 0, first)])
        assert gone.sock is not None
        gone.sock.close(linger=5000)  # disconnects before its answer, once its request is out (linger 0 may drop it)
        gone.sock = None
        served, deadline = 0, time.monotonic() + 10
        while served < 2 and time.monotonic() < deadline:  # a loaded machine may deliver the two a window apart
            served += server.serve(timeout_ms=1000)
        assert served == 2
        for plan in range(ROUNDS):
            for name, client in clients.items():
                assert client.sock is not None
                client.sock.send_multipart([encode(m) for m in request(name, plan, robots[name][plan])])
            for parts in garbage(*request("broken", plan, first)):
                assert broken.sock is not None
                broken.sock.send_multipart(parts)
            # every robot known has asked but "stalls": the batch waits the window (100 ms), not for it
            assert server.serve(timeout_ms=5000) == len(clients)
            for name, client in clients.items():
                reply = answer(client)
                expected, _ = own[name].act(*robots[name][plan])
                assert reply.frame_seq == plan and reply.robot == "panda"
                assert np.array_equal(reply.actions, expected), (name, plan)
        stats = server.stats
        assert stats.batches[len(clients)] == ROUNDS
        assert stats.bad["requests"] == ROUNDS * 6
        assert all(stats.served[name] == ROUNDS for name in clients)
        assert "broken" not in server.robots
    finally:
        for client in [*clients.values(), stall, broken]:
            client.close()
        server.close()
    assert not (tmp_path / "server").exists() and not (tmp_path / "server.lock").exists()


def test_a_new_episode_resets_only_that_robot_and_a_client_gets_its_answer(tmp_path: Path, robots) -> None:
    shared = NanoPolicy(PolicyConfig(decoding="jacobi"))
    batch = BatchPolicy(shared)
    server = PolicyServer(PolicyServerNodeConfig(endpoint=f"ipc://{tmp_path}/server"), batch)
    a, b = list(robots)[:2]
    with serving(server):
        client_a, client_b = FleetClient(server.config.endpoint, a), FleetClient(server.config.endpoint, b)
        try:
            for client, name in ((client_a, a), (client_b, b)):
                reply = client.request(*request(name, 0, robots[name][0]), timeout_s=10)
                assert reply is not None and reply.frame_seq == 0
            assert sorted(batch.robots) == sorted([a, b])
            reply = client_a.request(*request(a, 1, robots[a][1], episode=1), timeout_s=10)
            assert reply is not None and reply.frame_seq == 1
            fresh = NanoPolicy(PolicyConfig(decoding="jacobi"), model=shared.model)  # no memory: a new episode's first chunk
            assert np.array_equal(reply.actions, fresh.act(*robots[a][1])[0])
        finally:
            client_a.close()
            client_b.close()


def test_a_second_server_on_the_same_endpoint_is_refused(tmp_path: Path) -> None:
    batch = BatchPolicy(NanoPolicy(PolicyConfig(decoding="ar")))
    first = PolicyServer(PolicyServerNodeConfig(endpoint=f"ipc://{tmp_path}/server"), batch)
    first.open()
    try:
        with pytest.raises(Exception, match="in use"):
            PolicyServer(PolicyServerNodeConfig(endpoint=f"ipc://{tmp_path}/server"), batch).open()
    finally:
        first.close()
    with pytest.raises(ConfigError):
        PolicyServerNodeConfig(endpoint="udp://nowhere")


def test_the_plain_pyzmq_robot_of_the_protocol_doc_gets_its_chunk(tmp_path: Path, robots) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    section = doc.split("## 11. The policy server", 1)[1]
    namespace: dict = {}
    client = doc.split("## 9. A client with plain pyzmq", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    exec(compile(client, "protocol.md §9", "exec"), namespace)  # noqa: S102 - our own documentation: decode
    encoder = doc.split("## 10. The robot bridge", 1)[1].split("def encode", 1)[1].split("\n\n", 1)[0]
    exec(compile("import struct, msgpack\ndef encode" + encoder, "protocol.md §10", "exec"), namespace)  # noqa: S102
    exec(compile(section.split("```python", 1)[1].split("```", 1)[0], "protocol.md §11", "exec"), namespace)  # noqa: S102
    shared = NanoPolicy(PolicyConfig(decoding="consistency"))
    server = PolicyServer(PolicyServerNodeConfig(endpoint=f"ipc://{tmp_path}/server"), BatchPolicy(shared))
    image, vector, instruction = next(iter(robots.values()))[0]
    with serving(server):
        chunk = namespace["ask_chunk"](server.config.endpoint, "doc-robot", 5, np.ascontiguousarray(image),
                                       [*map(float, vector[:3]), 0.0, 0.0, 0.0, 1.0], float(vector[3]), instruction,
                                       0, 1234)
    expected, _ = NanoPolicy(PolicyConfig(decoding="consistency"), model=shared.model).act(image, vector, instruction)
    assert np.array_equal(chunk, expected)
