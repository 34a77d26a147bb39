"""Connect like a careful user: model numbers, operating mode, torque and lock read before anything moves."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agentrt.errors import RobotError
from sims.real.arm import BusArm, BusArmConfig
from sims.real.arms import get_arm
from sims.real.bus import BusConfig, ServoBus
from sims.real.calibration import nominal_calibration
from sims.real.emulator import PtyBusEmulator

from .conftest import IDS, arm_config, wait_until

WRONG_MODEL = {"feetech": 1284, "dynamixel": 1020}  # SCS0009, XM430-W350
EXPECTED = {"feetech": 777, "dynamixel": 1200}  # servo 3: STS3215, XL330-M288
VELOCITY = {"feetech": 1, "dynamixel": 1}
CHECKS = {"feetech": {"model_number", "operating_mode", "torque_enable", "lock", "present_position"},
          "dynamixel": {"operating_mode", "torque_enable", "present_position"}}


def _connect_fails(arm: BusArm, match: str) -> str:
    with pytest.raises(RobotError, match=match) as info:
        arm.connect()
    assert not arm.is_connected and arm.bus is None
    _flush(arm.config.port, arm.model.protocol)
    return str(info.value)


def _flush(port: str, protocol: str) -> None:
    """A PING round trip: the emulator handles bytes in order, so every earlier (unanswered) write has landed."""
    bus = ServoBus(BusConfig(port=port, protocol=protocol, timeout_ms=500.0), IDS)
    bus.open()
    try:
        bus.ping(1)
    finally:
        bus.close()


def test_a_servo_of_another_model_stops_connect_in_one_line(
    protocol: str, emulator: PtyBusEmulator, calibration_file: Path
) -> None:
    emulator.bank.set_value(3, "model_number", WRONG_MODEL[protocol])
    arm = BusArm(arm_config(protocol, emulator.port, calibration_file))
    message = _connect_fails(arm, "servo 3 ")
    assert str(WRONG_MODEL[protocol]) in message and f"expected a {'STS3215' if protocol == 'feetech' else 'XL330-M288'}" in message
    assert str(EXPECTED[protocol]) in message and "\n" not in message
    assert emulator.bank.writes == []  # nothing moved, nothing was turned off
    emulator.bank.set_value(3, "model_number", EXPECTED[protocol])
    arm.connect()  # fixed: a retry works
    try:
        assert arm.servos[3].model_number == EXPECTED[protocol]
    finally:
        arm.disconnect()


def _koch(tmp_path: Path) -> tuple[PtyBusEmulator, Path]:
    koch = get_arm("koch")
    return PtyBusEmulator("dynamixel", IDS, models=koch.models_by_id), nominal_calibration(koch).save(tmp_path / "c.json")


def test_the_koch_expects_xl430_at_the_shoulder(tmp_path: Path) -> None:
    emulator, calibration = _koch(tmp_path)
    with emulator:
        assert emulator.bank.value(1, "model_number") == 1060
        emulator.bank.set_value(1, "model_number", 1200)  # an XL330 where the XL430 belongs
        message = _connect_fails(BusArm(arm_config("dynamixel", emulator.port, calibration)), "servo 1 ")
    assert "XL330-M288 (model number 1200), expected a XL430-W250 (1060) for the koch" in message


def test_everything_is_read_before_the_first_write(protocol: str, emulator: PtyBusEmulator, calibration_file: Path) -> None:
    arm = BusArm(arm_config(protocol, emulator.port, calibration_file))
    arm.connect()
    try:
        assert wait_until(lambda: any(kind == "write" for kind, _, _ in emulator.bank.accesses))  # SYNC_WRITE: unanswered
        accesses = list(emulator.bank.accesses)
        first_write = next(n for n, (kind, _, _) in enumerate(accesses) if kind == "write")
        for servo_id in IDS:
            read = {name for kind, i, name in accesses[:first_write] if kind == "read" and i == servo_id}
            assert CHECKS[protocol] <= read, servo_id
        state = arm.servos[2]
        assert not state.torque_enabled and not state.mode_set and state.position_steps == 2048
        assert state.locked is (True if protocol == "feetech" else None)
    finally:
        arm.disconnect()


def test_a_wrong_mode_with_the_torque_off_is_set_to_position_and_said(
    protocol: str, emulator: PtyBusEmulator, calibration_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.bank.set_value(2, "operating_mode", VELOCITY[protocol])
    arm = BusArm(arm_config(protocol, emulator.port, calibration_file))
    with caplog.at_level(logging.WARNING, logger="sims.real.servos"):
        arm.connect()
    try:
        codec = emulator.bank.codec
        assert emulator.bank.value(2, "operating_mode") == codec.position_mode
        assert arm.servos[2].mode_set and arm.servos[2].operating_mode == codec.position_mode
        writes = [(name, value) for i, name, value in emulator.bank.writes if i == 2 and name in ("lock", "operating_mode")]
        if protocol == "feetech":  # the EEPROM unlocked for the write, then locked again as it was
            assert writes == [("lock", 0), ("operating_mode", 0), ("lock", 1)]
        else:
            assert writes == [("operating_mode", 3)]
        assert any("servo 2" in r.getMessage() and "set to position" in r.getMessage() for r in caplog.records)
        assert not any(i != 2 for i, name, _ in emulator.bank.writes if name == "operating_mode")
    finally:
        arm.disconnect()


def test_a_wrong_mode_with_the_torque_on_is_refused_and_nothing_is_touched(
    protocol: str, emulator: PtyBusEmulator, calibration_file: Path
) -> None:
    emulator.bank.set_value(5, "operating_mode", VELOCITY[protocol])
    emulator.bank.set_value(5, "torque_enable", 1)
    message = _connect_fails(BusArm(arm_config(protocol, emulator.port, calibration_file)), "servo 5 ")
    assert "torque on" in message and "power-cycle" in message and "\n" not in message
    assert emulator.bank.writes == []  # no mode change, and no torque off dropping what it holds
    assert emulator.bank.value(5, "operating_mode") == VELOCITY[protocol]


def test_torque_already_on_starts_from_the_present_position(
    protocol: str, emulator: PtyBusEmulator, calibration_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.bank.set_value(4, "goal_position", 2600)  # another program left servo 4 holding 2600
    emulator.bank.set_value(4, "torque_enable", 1)
    arm = BusArm(arm_config(protocol, emulator.port, calibration_file))
    with caplog.at_level(logging.WARNING, logger="sims.real.servos"):
        arm.connect()
    try:
        assert arm.servos[4].torque_enabled and arm.servos[4].position_steps == 2600
        assert arm.bus is not None
        arm.bus.ping(1)  # a round trip: the unanswered SYNC_WRITEs before it have landed
        goals = [value for i, name, value in emulator.bank.writes if i == 4 and name == "goal_position"]
        assert goals == [2600]  # goal := where it is: no jump
        assert emulator.bank.torque_writes(0) == []  # never dropped on the way
        assert any("torque on already" in r.getMessage() for r in caplog.records)
    finally:
        arm.disconnect()


def test_dynamixel_extended_position_modes_are_kept(tmp_path: Path) -> None:
    emulator, calibration = _koch(tmp_path)
    with emulator:
        emulator.bank.set_value(1, "operating_mode", 4)  # extended position, as LeRobot sets a Koch follower
        emulator.bank.set_value(6, "operating_mode", 5)  # current-based position (LeRobot's gripper)
        arm = BusArm(arm_config("dynamixel", emulator.port, calibration))
        arm.connect()
        try:
            assert arm.servos[1].operating_mode == 4 and arm.servos[6].operating_mode == 5
            assert not arm.servos[1].mode_set
        finally:
            arm.disconnect()
        assert wait_until(lambda: emulator.bank.torque_writes(0) == IDS)
        assert [name for _, name, _ in emulator.bank.writes].count("operating_mode") == 0


@pytest.mark.parametrize("robot", ["so100", "koch"])
def test_the_dry_run_emulates_the_arms_own_servos(robot: str) -> None:
    arm = BusArm(BusArmConfig(robot=robot, dry_run=True, watchdog_thread=False))
    arm.connect()
    try:
        assert [s.model_number for s in arm.servos.values()] == list(arm.model.servo_models)
    finally:
        arm.disconnect()
