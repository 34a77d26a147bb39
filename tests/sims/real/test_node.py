"""The arm node, the actuator tick, and launch/so100_*.yaml: validation and the dry run."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agentrt.launch import load_launch
from agentrt.messages import ActionChunk, RobotState, Telemetry
from agentrt.testing import MockNode, frames_of
from sims.real.actuator import Actuator
from sims.real.arm import BusArm, BusArmConfig
from sims.real.node import ArmNode

REPO = Path(__file__).resolve().parents[3]


def chunk(kind: str, rows: list[list[float]], seq: int = 0) -> ActionChunk:
    return ActionChunk("so100", seq, seq, 0, kind, np.array(rows, np.float32), 33.3)


@pytest.mark.parametrize("name", ["so100_reach.yaml", "so100_remote.yaml"])
def test_the_launch_files_validate(name: str) -> None:
    spec = load_launch(REPO / "launch" / name)
    assert {"camera", "policy"} <= set(spec.nodes)


def test_the_launch_file_takes_the_dry_run_override() -> None:
    spec = load_launch(REPO / "launch" / "so100_reach.yaml", ["arm.dry_run=true", "camera.source=synthetic"])
    assert spec.nodes["arm"].config.dry_run is True
    assert spec.nodes["arm"].config.calibration_path == "calib/so100.json"


def test_the_arm_node_executes_chunks_and_turns_the_torque_off_at_teardown(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sims.real.bus"):
        node = MockNode(ArmNode, params={"robot": "so100", "dry_run": True, "watchdog_thread": False})
        # 8 steps: at max_ee_speed_m_s (0.15 m/s, 5 mm a step) the tool point needs 7 to get there.
        sent = node.run(inputs=[("actions", chunk("joint_target", [[0.05] * 5 + [1.0]] * 8))], ticks=10)
        node.close()
    states = frames_of(sent, "state")
    assert len(states) == 10 and all(isinstance(s, RobotState) for s in states)
    np.testing.assert_allclose(states[-1].joint_positions, 0.05, atol=2e-3)
    assert [s.seq for s in states] == list(range(10))
    assert caplog.records[-1].getMessage() == "dry run: SYNC_WRITE torque_enable (addr 40, 1 B): 1=0 2=0 3=0 4=0 5=0 6=0"


def test_the_actuator_drops_bad_chunks_and_holds() -> None:
    arm = BusArm(BusArmConfig(robot="so100", dry_run=True, watchdog_thread=False))
    arm.connect()
    try:
        actuator = Actuator(arm, "so100")
        assert not actuator.submit(Telemetry("x", 0, 0))
        assert not actuator.submit(chunk("fly", [[0.0] * 4]))
        assert actuator.bad_chunks == 2 and arm.stats.rejected == 1 and arm.holding
        assert actuator.submit(chunk("joint_target", [[0.0] * 9]))  # well-formed chunk, wrong width for the arm
        actuator.step()
        assert actuator.bad_actions == 1 and arm.holding and actuator.queue.remaining == 0
        assert actuator.submit(chunk("ee_delta", [[0.0, 0.0, -0.002, 0.0]] * 2))
        state = actuator.step()
        assert not arm.holding and state.ee_pose.shape == (7,)
    finally:
        arm.disconnect()


def test_the_launch_dry_run_prints_the_servo_writes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "agentrt.cli", "run", str(REPO / "launch" / "so100_reach.yaml"), "--duration", "3",
               "--set", "arm.dry_run=true", "--set", "camera.source=synthetic"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "[arm] INFO sims.real.bus: dry run: no port opened" in output
    assert "dry run: SYNC_WRITE torque_enable (addr 40, 1 B): 1=1 2=1 3=1 4=1 5=1 6=1" in output
    assert "dry run: SYNC_WRITE goal_position (addr 42, 2 B): 1=" in output
    assert output.rindex("torque_enable (addr 40, 1 B): 1=0 2=0 3=0 4=0 5=0 6=0") > output.rindex("goal_position")


def test_the_actuator_refuses_chunks_for_another_robot_and_counts_executed_chunks_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Items 15.2 and 15.12: chunks for another robot are refused (counted, logged once); a chunk is counted
    executed once, when a step of it reached the arm, not when it arrived."""
    arm = BusArm(BusArmConfig(robot="so100", dry_run=True, watchdog_thread=False))
    arm.connect()
    try:
        actuator = Actuator(arm, "so100")
        start = arm.get_observation().joint_positions
        with caplog.at_level(logging.WARNING, logger="agentrt.chunks"):
            for seq in range(20):
                koch = ActionChunk("koch", seq, seq, 0, "joint_target", np.full((4, 6), 0.02, np.float32), 33.3)
                assert not actuator.submit(koch)
        actuator.step()
        np.testing.assert_allclose(arm.get_observation().joint_positions, start, atol=2e-3)  # not executed
        assert actuator.refused_chunks == 20 and actuator.executed_chunks == 0
        refusals = [r.getMessage() for r in caplog.records if "'koch'" in r.getMessage()]
        assert len(refusals) == 1 and "this robot is 'so100'" in refusals[0]
        assert actuator.submit(chunk("joint_target", [[0.0] * 9]))  # reaches the arm, which refuses the width
        actuator.step()
        assert actuator.bad_actions == 1 and actuator.executed_chunks == 0
        assert actuator.submit(chunk("joint_target", [[0.01, 0, 0, 0, 0, 0]] * 3, seq=1))  # replaced before a step
        assert actuator.submit(chunk("joint_target", [[0.02, 0, 0, 0, 0, 0]] * 3, seq=2))
        for _ in range(5):
            actuator.step()
        assert actuator.executed_chunks == 1
        assert actuator.counters() == {"executed_chunks": 1, "bad.other_robot_chunks": 20,
                                       "bad.malformed_chunks": 0, "bad.rejected_actions": 1}
    finally:
        arm.disconnect()
