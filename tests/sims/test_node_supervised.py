"""The sim under the supervisor: a launch file with a sim and a policy runs its episodes and ends the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agentrt.launch import load_launch
from agentrt.supervisor import Supervisor, SupervisorConfig
from agentrt.testing import MockNode
from sims.node import SimNode

LAUNCH = """
name: sim_echo
nodes:
  sim:
    class: sims.node:SimNode
    inputs: {{actions: policy.actions}}
    params: {{task: reach, episodes: 1, clock: lockstep, camera_width: 48, camera_height: 48,
              renderer: tiny, results_path: {results}}}
    ends_run: true
    restart: never
  policy:
    class: agentrt.nodes.echo:EchoNode
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
    assert set(SimNode.outputs) == {"frames", "state"}
    assert SimNode.inputs["actions"].lossless
    with pytest.raises(Exception, match="clock"):
        MockNode(SimNode, params={"clock": "sundial"})


def test_chunks_the_sim_did_not_execute_are_counted_for_telemetry() -> None:
    from agentrt.messages import ActionChunk

    def chunk(seq: int, frame_seq: int, dims: int) -> ActionChunk:
        return ActionChunk("panda", seq, frame_seq, 1, "ee_delta", np.zeros((2, dims), np.float32), 50.0)

    harness = MockNode(SimNode, params={"task": "reach", "episodes": 1, "clock": "lockstep",
                                               "camera_width": 32, "camera_height": 32, "renderer": "tiny"})
    try:
        # dims 5 is no ee_delta (4 or 7): the robot refuses both rows; then a chunk from the first frame, which the
        # sim no longer waits for (frame_seq -1 would be a chunk from no frame: executed, protocol section 3)
        harness.run(inputs=[("actions", chunk(0, 10**6, 5)), ("actions", chunk(1, 0, 4))])
    finally:
        harness.close()
    assert harness.node.stats.counters == {"bad.rejected_actions": 2, "dropped.stale_chunks": 1,
                                           "bad.other_robot_chunks": 0, "bad.not_chunks": 0, "unframed_chunks": 0}


def test_chunks_for_another_robot_are_refused_and_the_count_reaches_telemetry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 15.2 under the supervisor: a policy addressing another robot moves nothing, and the refusals
    show in the sim's telemetry and the run's bad count."""
    monkeypatch.setenv("AGENTRT_RUN_DIR", str(tmp_path / "run"))
    results = tmp_path / "results.jsonl"
    launch = tmp_path / "sim_other_robot.yaml"
    text = LAUNCH.format(results=results).replace("robot: panda", "robot: kuka_iiwa").replace("clock: lockstep", "clock: realtime")
    launch.write_text(text)
    supervisor = Supervisor(load_launch(launch), config=SupervisorConfig(heartbeat_ms=100, telemetry_ms=100))
    supervisor.run(duration_s=8)
    sim = supervisor.telemetry.nodes["sim"]
    assert sim.total("bad.other_robot_chunks") > 0
    assert supervisor.telemetry.summary()["nodes"]["sim"]["bad"] >= sim.total("bad.other_robot_chunks")
    assert sim.total("unframed_chunks") == 0 and sim.total("bad.rejected_actions") == 0
