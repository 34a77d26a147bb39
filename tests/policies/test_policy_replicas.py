"""Policy-server replicas as local processes: robots stick to the replica their index picks and get the
chunks one server gives them; a dead replica, zero replicas, a port in use: one line; no process left."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest

from agentrt.errors import ConfigError
from agentrt.testing import is_python_helper
from policies.vla.fleet import FleetLinkNodeConfig, pick_server
from policies.vla.policy import default_weights
from policies.vla.replicas import ReplicaConfig, ReplicaError, Replicas
from tests.policies.replica_robots import (  # noqa: I001
    SERVER,
    Observation,
    assert_same,
    observations,
    replay,
    single_server,
)
from tests.policies.sweep_workers import descendants, wait_gone

weights = pytest.mark.skipif(not default_weights("consistency").exists(), reason="no shipped weights")


@pytest.fixture(scope="module")
def robots() -> list[list[Observation]]:
    return observations()


@pytest.fixture(scope="module")
def reference(robots: list[list[Observation]]) -> dict[str, list[np.ndarray]]:
    return single_server(robots)


def test_a_robot_picks_one_of_several_servers_by_its_index_for_good() -> None:
    servers = "tcp://127.0.0.1:7700, tcp://127.0.0.1:7701"
    assert [pick_server(servers, i) for i in range(4)] == ["tcp://127.0.0.1:7700", "tcp://127.0.0.1:7701"] * 2
    assert pick_server("ipc:///tmp/a", 5) == "ipc:///tmp/a"
    for bad in ("tcp://127.0.0.1:7700,http://x", ","):
        with pytest.raises(ConfigError, match="comma-separated for replicas") as info:
            FleetLinkNodeConfig(server=bad)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="expected an index >= 0"):
        FleetLinkNodeConfig(replica=-1)


@pytest.mark.parametrize(("config", "match"), [
    ({"replicas": 0}, r"--replicas: expected >= 1, got 0"),
    ({"engine": "slurm"}, r"--engine: expected one of local, ray"),
    ({"address": "auto"}, r"only with --engine ray"),
    ({"replicas": 2, "port": 65535}, r"--port: expected 0 \(free ports\) or 1024..65534"),
])
def test_bad_replica_options_are_one_line(config: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        ReplicaConfig(**config)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def _replicas_and_workers() -> set[int]:
    """This process's children, less Python's resource tracker (started by the first spawn; lives as we do)."""
    return {pid for pid in descendants() if not is_python_helper(pid)}


@pytest.fixture
def no_process_left() -> Iterator[None]:
    before = _replicas_and_workers()
    yield
    assert not wait_gone(_replicas_and_workers() - before), "a replica process outlived close()"


@weights
def test_a_port_in_use_is_one_line_and_nothing_is_left_running(no_process_left: None) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"replica 0: policy server: cannot bind tcp://127.0.0.1:{port}") as info:
            Replicas(ReplicaConfig(replicas=1, port=port), SERVER).start()
    assert "\n" not in str(info.value)


@weights
def test_local_replicas_serve_their_robots_as_one_server_would(
        robots: list[list[Observation]], reference: dict[str, list[np.ndarray]], no_process_left: None) -> None:
    replicas = Replicas(ReplicaConfig(replicas=2, port=0), SERVER)
    with replicas:
        endpoints = replicas.endpoints
        assert len(set(endpoints)) == 2 and all(e.startswith("tcp://127.0.0.1:") for e in endpoints)
        chunks, picked = replay(",".join(endpoints), robots)
        replicas.check()  # both alive
        replicas._processes[1].kill()
        replicas._processes[1].join()
        with pytest.raises(ReplicaError, match=rf"replica 1 \({endpoints[1]}\) exited with code -9") as info:
            replicas.check()
        assert "\n" not in str(info.value)
    assert_same(chunks, reference)
    assert picked == {f"robot{i}": endpoints[i % 2] for i in range(4)}
    [stats] = replicas.stats  # the killed replica has none to give
    assert set(stats["served"]) == {"robot0", "robot2"} and stats["chunks"] == 6


def test_the_command_says_what_is_wrong_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from agentrt.cli.__main__ import main

    assert main(["policy-server", "--replicas", "0"]) != 0
    err = capsys.readouterr().err.strip()
    assert "--replicas: expected >= 1, got 0" in err and "\n" not in err
    assert main(["policy-server", "--address", "auto"]) != 0
    assert "only with --engine ray" in capsys.readouterr().err
