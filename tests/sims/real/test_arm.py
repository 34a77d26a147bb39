"""BusArm over the emulated buses: the Robot contract, limits, IK, watchdog release, faults, calibration."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from agentrt.errors import ActionError, ConfigError, RobotError
from sims.check import check_robot
from sims.real.arm import BusArm, BusArmConfig
from sims.real.arms import get_arm
from sims.real.bus import BusConfig, BusError, ServoBus
from sims.real.calibration import Calibrator, load_calibration, nominal_calibration
from sims.real.emulator import PtyBusEmulator
from sims.robot import Action
from sims.safety import workspace_excess

from .conftest import ARM_OF, IDS, arm_config, wait_until


def test_the_arm_passes_check_robot(arm: BusArm) -> None:
    check_robot(arm)


def test_connect_holds_where_the_arm_is_and_disconnect_turns_the_torque_off(
    protocol: str, emulator: PtyBusEmulator, calibration_file: Path
) -> None:
    emulator.bank.set_value(2, "present_position", 2300)
    arm = BusArm(arm_config(protocol, emulator.port, calibration_file))
    arm.connect()
    assert wait_until(lambda: emulator.bank.value(2, "goal_position") == 2300)  # goal := measured, then torque on
    assert wait_until(lambda: emulator.bank.torque_writes(1) == IDS)
    names = [name for _, name, _ in emulator.bank.writes]
    assert names.index("goal_position") < names.index("torque_enable")  # never torque on towards a stale goal
    assert arm.holding and not arm.released
    arm.disconnect()
    assert wait_until(lambda: emulator.bank.torque_writes(0) == IDS)
    assert not arm.is_connected
    arm.disconnect()  # twice is fine


def test_joint_targets_are_clipped_to_limits_and_speed(protocol: str, emulator: PtyBusEmulator, calibration_file: Path) -> None:
    # A box and tool speed that never bind, so the joint ranges and the joint speed cap are what is tested here
    # (the workspace box: test_joint_targets_keep_the_tool_point_in_the_box_and_under_the_speed_limit).
    arm = BusArm(arm_config(protocol, emulator.port, calibration_file, workspace_min_m=(-2.0, -2.0, -2.0),
                            workspace_max_m=(2.0, 2.0, 2.0), max_ee_speed_m_s=100.0))
    arm.connect()
    try:
        lower, upper = arm.joint_limits
        start = arm.get_observation().joint_positions
        sent = arm.send_action(Action.joint_target(upper + 1.0, gripper=0.0))
        step = arm.config.max_joint_speed_rad_s / arm.config.control_hz
        assert np.all(np.abs(sent.values[:5] - start) <= step + 1e-9)
        assert arm.stats.clipped == 1
        assert arm.calibration is not None
        expected = arm.calibration.to_steps(sent.values[:5])
        assert wait_until(lambda: [emulator.bank.value(i, "goal_position") for i in IDS[:5]] == expected.tolist())
        for _ in range(200):
            sent = arm.send_action(Action.joint_target(upper + 1.0, gripper=0.0))
        np.testing.assert_allclose(sent.values[:5], upper)  # never past the calibrated range
    finally:
        arm.disconnect()


def test_joint_targets_keep_the_tool_point_in_the_box_and_under_the_speed_limit() -> None:
    """Item 15.1 on the SO-100 dry run: joint targets obey the workspace box and the tool speed limit."""
    arm = BusArm(BusArmConfig(robot="so100", dry_run=True, watchdog_thread=False))
    arm.connect()
    try:
        cfg = arm.config
        swings = [  # each drives the tool point out of the box if followed
            np.array([0.0, 1.5, 0.0, 0.0, 0.0]),  # forward and down: z < 0.01
            np.array([1.7, 1.5, -1.5, 1.5, 0.0]),  # sideways and down
            np.array([-1.7, -1.7, 1.7, 0.0, 0.0]),  # back over the base: x < 0.05
            np.array([0.0, -1.0, -1.0, 0.0, 0.0]),  # up: z > 0.35
        ]
        excess, speeds = [], []
        travelled = 0.0
        prev = arm.get_observation().ee_pose[:3]
        for target in swings:
            for _ in range(80):
                arm.send_action(Action.joint_target(target, gripper=0.0))
                here = arm.get_observation().ee_pose[:3]  # the emulated servos are where they were told
                excess.append(float(workspace_excess(here, cfg).max()))
                speeds.append(float(np.abs(here - prev).max()) * cfg.control_hz)  # per axis, per control step
                travelled += float(np.linalg.norm(here - prev))
                prev = here
        assert max(excess) <= 0.002, f"tool point {max(excess) * 1000:.1f} mm outside the box"
        # Plus one servo step (0.09 degrees) of rounding per joint: ~1 mm at the tool.
        assert max(speeds) <= cfg.max_ee_speed_m_s + 0.001 * cfg.control_hz, f"tool point at {max(speeds):.2f} m/s"
        assert arm.stats.clipped > 0 and travelled > 0.2  # limited, not frozen
        inside = np.array([0.3, -0.4, 0.3, 0.2, 0.0])  # a target whose tool point is in the box is reached
        for _ in range(60):
            sent = arm.send_action(Action.joint_target(inside, gripper=0.0))
        np.testing.assert_allclose(sent.values[:5], inside, atol=1e-9)
    finally:
        arm.disconnect()


def test_ee_delta_moves_the_tool_point_through_ik(arm: BusArm) -> None:
    before = arm.get_observation().ee_pose[:3]
    sent = arm.send_action(Action.ee_delta([0.0, 0.0, -0.004], 1.0))
    after = arm.get_observation().ee_pose[:3]
    np.testing.assert_allclose(after - before, sent.values[:3], atol=1.5e-3)  # IK error plus one servo step
    assert after[2] < before[2]
    rotated = arm.send_action(Action.ee_delta([0, 0, 0], 0.0, drpy=[0.05, 0.05, 0.05]))
    assert rotated.values[3] == pytest.approx(0.05) and rotated.values[4] == 0.0 and rotated.values[5] == 0.0


def test_a_bad_action_is_refused_and_the_arm_holds(arm: BusArm) -> None:
    arm.send_action(Action.joint_target(np.zeros(5)))
    with pytest.raises(ActionError, match="NaN"):
        arm.send_action(Action.joint_target([0.0, np.nan, 0.0, 0.0, 0.0]))
    assert arm.holding and arm.stats.rejected == 1


def test_the_watchdog_holds_then_releases_the_torque_and_the_next_action_rearms(
    protocol: str, emulator: PtyBusEmulator, calibration_file: Path
) -> None:
    arm = BusArm(arm_config(protocol, emulator.port, calibration_file, deadline_ms=100, release_after_ms=300,
                            watchdog_thread=True))
    arm.connect()
    try:
        arm.send_action(Action.joint_target(np.full(5, 0.05)))
        assert wait_until(lambda: arm.released)
        assert arm.stats.watchdog_holds == 1
        assert "release_after_ms" in arm.release_reason
        assert wait_until(lambda: emulator.bank.torque_writes(0) == IDS)
        arm.send_action(Action.joint_target(np.full(5, 0.05)))
        assert not arm.released
        assert wait_until(lambda: emulator.bank.torque_writes(1) == IDS + IDS)  # on at connect, again at re-arm
    finally:
        arm.disconnect()


def test_a_missing_servo_raises_and_turns_the_others_off(arm: BusArm, emulator: PtyBusEmulator) -> None:
    emulator.faults.missing_ids.add(3)
    with pytest.raises(BusError, match=r"no reply from servo 3 .*is it powered and wired\?.*torque off sent to every servo"):
        arm.get_observation()
    assert arm.released and arm.holding
    others = [i for i in IDS if i != 3]
    assert wait_until(lambda: emulator.bank.torque_writes(0) == others)


def test_a_timeout_during_an_action_takes_the_torque_off_path(arm: BusArm, emulator: PtyBusEmulator) -> None:
    emulator.faults.silent = True
    with pytest.raises(BusError, match=r"no reply from servo 1 .*torque off sent"):
        arm.send_action(Action.ee_delta([0.0, 0.0, 0.001], 0.0))
    assert arm.released
    emulator.faults.silent = False
    assert wait_until(lambda: emulator.bank.torque_writes(0) == IDS)  # the broadcast needs no answer


def test_an_unplugged_port_raises_clearly(arm: BusArm, emulator: PtyBusEmulator, caplog: pytest.LogCaptureFixture) -> None:
    emulator.unplug()
    with caplog.at_level(logging.ERROR, logger="sims.real.arm"):
        with pytest.raises(BusError, match=r"port .* failed .*plugged in.*torque off could not be sent") as info:
            arm.get_observation()
    assert info.value.port_lost and arm.released
    assert any("torque off" in r.getMessage() for r in caplog.records)  # the torque-off path was taken
    arm.disconnect()  # does not raise on a dead port
    assert not arm.is_connected


def test_a_failed_connect_releases_the_port_and_a_retry_works(
    protocol: str, emulator: PtyBusEmulator, calibration_file: Path
) -> None:
    emulator.faults.missing_ids.add(6)
    arm = BusArm(arm_config(protocol, emulator.port, calibration_file))
    with pytest.raises(RobotError, match="no reply from servo 6"):
        arm.connect()
    assert not arm.is_connected and arm.bus is None
    emulator.faults.missing_ids.clear()
    arm.connect()  # the port was closed, so it opens again (exclusive access)
    try:
        assert arm.is_connected
    finally:
        arm.disconnect()


def test_calibration_is_recorded_saved_and_loaded(protocol: str, emulator: PtyBusEmulator, tmp_path: Path) -> None:
    model = get_arm(ARM_OF[protocol])
    bus = ServoBus(BusConfig(port=emulator.port, protocol=protocol, timeout_ms=200), model.all_ids)
    bus.open()
    try:
        calibrator = Calibrator(bus, model)
        calibrator.begin()
        assert wait_until(lambda: emulator.bank.torque_writes(0) == IDS)
        zero = {1: 2000, 2: 2100, 3: 1900, 4: 2050, 5: 2048, 6: 1500}
        for i, steps in zero.items():
            emulator.bank.set_value(i, "present_position", steps)
        assert calibrator.capture_zero() == zero
        with pytest.raises(RobotError, match="moved less than"):
            calibrator.finish()
        for offset in (-700, 800):  # a person sweeps every joint, and opens the gripper
            for i, steps in zero.items():
                emulator.bank.set_value(i, "present_position", steps + (abs(offset) if i == 6 else offset))
            calibrator.sample()
        calibration = calibrator.finish()
    finally:
        bus.close()
    assert [j.zero_steps for j in calibration.joints] == [2000, 2100, 1900, 2050, 2048]
    assert [(j.min_steps, j.max_steps) for j in calibration.joints][0] == (1300, 2800)
    assert calibration.gripper is not None
    assert (calibration.gripper.closed_steps, calibration.gripper.open_steps) == (1500, 2300)
    path = calibration.save(tmp_path / "cal.json")
    loaded = load_calibration(path, model)
    assert loaded == calibration
    np.testing.assert_allclose(loaded.to_radians(np.array([2000, 2100, 1900, 2050, 2048])), 0.0)
    assert loaded.gripper_to_steps(1.0) == 1500 and loaded.gripper_to_steps(0.0) == 2300


def test_calibration_files_fail_with_what_to_do(tmp_path: Path) -> None:
    so100, koch = get_arm("so100"), get_arm("koch")
    with pytest.raises(ConfigError, match=r"no calibration file at .*agentrt bridge --arm so100 --port PORT --calibrate"):
        load_calibration(tmp_path / "missing.json", so100)
    path = nominal_calibration(koch).save(tmp_path / "koch.json")
    with pytest.raises(ConfigError, match="calibrates a koch"):
        load_calibration(path, so100)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a valid calibration file"):
        load_calibration(tmp_path / "bad.json", so100)


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"calibration_path: a real so100 needs one.*--calibrate"):
        BusArmConfig(robot="so100", port="/dev/ttyACM0")
    with pytest.raises(ConfigError, match="release_after_ms"):
        BusArmConfig(dry_run=True, deadline_ms=500, release_after_ms=400)
    with pytest.raises(ConfigError, match="unknown real arm"):
        BusArmConfig(robot="ur5", dry_run=True)


def test_the_dry_run_arm_logs_the_servo_writes(caplog: pytest.LogCaptureFixture) -> None:
    arm = BusArm(BusArmConfig(robot="so100", dry_run=True, port="/dev/ttyNOPE-agentrt", watchdog_thread=False))
    with caplog.at_level(logging.INFO, logger="sims.real.bus"):
        arm.connect()
        # The pan joint alone: 0.01 rad on all five would move the tool past max_ee_speed_m_s in one step.
        arm.send_action(Action.joint_target([0.01, 0.0, 0.0, 0.0, 0.0], gripper=1.0))
        arm.disconnect()
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("dry run: SYNC_WRITE goal_position (addr 42, 2 B): 1=2055 ") for line in lines), lines
    assert lines[-1] == "dry run: SYNC_WRITE torque_enable (addr 40, 1 B): 1=0 2=0 3=0 4=0 5=0 6=0"
