"""Robots for the replica tests: 4 FleetClients replaying recorded observations, each sticking to the
replica its index picks, and the same requests answered by one PolicyServer in this process."""

from __future__ import annotations

import threading

import numpy as np

from agentrt.bench.vla import RECORDED, load_observations
from agentrt.messages import Frame, RobotState
from policies.vla.fleet import FleetClient
from policies.vla.replicas import _Serving
from policies.vla.server import PolicyServerNodeConfig

ROBOTS = 4
ROUNDS = 3
SERVER = PolicyServerNodeConfig(endpoint="tcp://127.0.0.1:*", decoding="consistency", device="cpu")

Observation = tuple[np.ndarray, np.ndarray, str]


def observations() -> list[list[Observation]]:
    """Per robot, ROUNDS observations of its own (a different recorded episode each)."""
    observed = [o for episodes in load_observations(RECORDED, 1, ROUNDS).values() for e in episodes for o in e]
    return [[observed[(7 * robot + r) % len(observed)] for r in range(ROUNDS)] for robot in range(ROBOTS)]


def replay(servers: str, robots: list[list[Observation]]) -> tuple[dict[str, list[np.ndarray]], dict[str, str]]:
    """Each robot asks its observations in turn (all robots at once, one thread each); -> chunks per robot,
    and the endpoint each robot picked."""
    chunks: dict[str, list[np.ndarray]] = {}
    picked: dict[str, str] = {}

    def robot(index: int) -> None:
        name = f"robot{index}"
        client = FleetClient(servers, name, replica=index)
        picked[name], chunks[name] = client.server, []
        try:
            for seq, (image, vector, instruction) in enumerate(robots[index], 1):
                pose = np.array([*vector[:3], 0.0, 0.0, 0.0, 1.0])
                state = RobotState("panda", seq, seq, np.zeros(7), np.zeros(7), pose, float(vector[3]),
                                   frame_seq=seq, instruction=str(instruction), episode=0)
                reply = client.request(state, Frame("scene", seq, 1000 + seq, np.ascontiguousarray(image)),
                                       timeout_s=60.0)
                assert reply is not None, f"{name} got no chunk from {client.server}"
                chunks[name].append(np.asarray(reply.actions))
        finally:
            client.close()

    threads = [threading.Thread(target=robot, args=(i,)) for i in range(ROBOTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(chunks) == ROBOTS and all(len(c) == ROUNDS for c in chunks.values()), "a robot failed (see above)"
    return chunks, picked


def single_server(robots: list[list[Observation]]) -> dict[str, list[np.ndarray]]:
    """The same requests answered by one PolicyServer in this process (the reference), on a thread of its own."""
    serving = _Serving(SERVER)
    try:
        return replay(serving.endpoint, robots)[0]
    finally:
        serving.stop()


def assert_same(got: dict[str, list[np.ndarray]], want: dict[str, list[np.ndarray]]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        for r, (a, b) in enumerate(zip(got[name], want[name], strict=True)):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}, round {r}")
