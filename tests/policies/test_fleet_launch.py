"""launch/fleet_reach.yaml under the supervisor: three sims, their links and one policy server, in lockstep on
loopback; every robot succeeds and is served, and every process and socket is gone afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agentrt.launch import load_launch
from agentrt.supervisor import Supervisor, SupervisorConfig
from agentrt.testing import child_pids, process_alive
from policies.vla.policy import default_weights

pytestmark = pytest.mark.skipif(not default_weights("consistency").exists(), reason="no shipped weights")

ROBOTS = 3


def test_the_fleet_launch_file_loads_and_follows_the_robot_count() -> None:
    spec = load_launch("launch/fleet_reach.yaml", ["sim.repeat=5"])
    assert sorted(spec.nodes) == sorted(["server", *(f"sim{i}" for i in range(5)), *(f"link{i}" for i in range(5))])
    assert spec.nodes["link4"].inputs == {"frames": ("sim4", "frames"), "state": ("sim4", "state")}
    assert spec.nodes["sim4"].inputs == {"actions": ("link4", "actions")}
    assert spec.nodes["link3"].config.robot_id == "robot3" and spec.nodes["link3"].config.clock == "lockstep"
    assert [spec.nodes[f"link{i}"].config.replica for i in range(5)] == list(range(5))  # its pick of the replicas
    assert len({spec.nodes[f"sim{i}"].config.seed for i in range(5)}) == 5  # every robot its own episodes


def test_three_robots_run_their_episodes_through_one_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_RUN_DIR", str(tmp_path / "run"))
    endpoint = f"ipc://{tmp_path}/server"
    stats = tmp_path / "server.json"
    spec = load_launch("launch/fleet_reach.yaml", [
        f"sim.repeat={ROBOTS}", "sim.episodes=1", f"sim.results_path={tmp_path}/robot{{i}}.jsonl",
        f"server.endpoint={endpoint}", f"server.stats_path={stats}", f"link.server={endpoint}"])
    supervisor = Supervisor(spec, config=SupervisorConfig(heartbeat_ms=100))
    code = supervisor.run(duration_s=240)  # the last sim's end ends the run long before
    assert code == 0
    for i in range(ROBOTS):
        episodes = [json.loads(line) for line in (tmp_path / f"robot{i}.jsonl").read_text().splitlines()]
        assert len(episodes) == 1 and episodes[0]["success"], (i, episodes)
    served = json.loads(stats.read_text())
    assert sorted(served["served"]) == [f"robot{i}" for i in range(ROBOTS)]
    assert served["bad"] == {} and sum(int(k) * v for k, v in served["batches"].items()) == served["chunks"]
    assert not supervisor.pids() and not any(process_alive(pid) for pid in supervisor.all_pids())
    assert not child_pids(os.getpid())
    assert not (tmp_path / "server").exists() and not (tmp_path / "server.lock").exists()
