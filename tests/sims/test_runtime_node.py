"""The sim under the supervisor: a launch file with a sim and a policy runs its episodes and ends the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrt.launch import load_launch
from agentrt.supervisor import Supervisor, SupervisorConfig
from agentrt.testing import MockNode
from sims.runtime_node import SimulationNode

LAUNCH = """
name: sim_echo
nodes:
  sim:
    class: sims.runtime_node:SimulationNode
    inputs: {{actions: policy.actions}}
    params: {{task: reach, episodes: 1, clock: lockstep, camera_width: 48, camera_height: 48,
              renderer: tiny, results_path: {results}}}
    ends_run: true
    restart: never
  policy:
    class: agentrt.nodes.echo:EchoPolicy
    inputs: {{frames: sim.frames}}
    params: {{robot: panda, dims: 4, steps: 8, dt_ms: 50}}
"""


def test_sim_node_runs_its_episodes_under_the_supervisor_and_ends_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_RUN_DIR", str(tmp_path / "run"))
    results = tmp_path / "results.jsonl"
    launch = tmp_path / "sim_echo.yaml"
    launch.write_text(LAUNCH.format(results=results))
    supervisor = Supervisor(load_launch(launch), config=SupervisorConfig(heartbeat_ms=100))
    code = supervisor.run(duration_s=120)  # ends_run stops it long before, when the episode is over
    assert code == 0
    episodes = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(episodes) == 1 and episodes[0]["steps"] > 0  # the echo policy drove it (success not expected)


def test_sim_node_declares_its_ports_and_validates_params() -> None:
    assert set(SimulationNode.outputs) == {"frames", "state"}
    assert SimulationNode.inputs["actions"].lossless
    with pytest.raises(Exception, match="clock"):
        MockNode(SimulationNode, params={"clock": "sundial"})
