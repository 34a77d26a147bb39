"""LeRobot calibration files (lerobot >= 0.2) used unchanged: loaded, converted, written to the servos, driven.

The files are written here from LeRobot's documented format (a draccus dump of
``dict[str, MotorCalibration]``: id, drive_mode, homing_offset, range_min, range_max per
motor), with numbers like those ``lerobot-calibrate`` records. The expected values come
from LeRobot's own formulas (``MotorsBus._normalize``), written out independently below.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from agentrt.cli.__main__ import main
from agentrt.errors import ConfigError
from agentrt.messages import ActionChunk, RobotState, now_ns
from agentrt.transport import Publisher, Subscriber
from sims.real.arm import BusArm
from sims.real.arms import get_arm
from sims.real.bridge import BridgeConfig, RobotBridge
from sims.real.calibration import load_calibration, nominal_calibration
from sims.real.emulator import PtyBusEmulator
from sims.real.lerobot_calibration import LeRobotCalibration
from sims.robot import Action

from .conftest import IDS, arm_config, wait_until

MOTORS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
# (homing_offset, range_min, range_max) per motor. SO: after set_half_turn_homings the middle pose reads 2047,
# wrist_roll is a full turn (0..4095); STS offsets fit 11 bits. Koch: shoulder_pan and wrist_roll full turn,
# Dynamixel offsets are 32-bit (present = actual + offset).
SO101 = [(-1470, 758, 3292), (1020, 821, 3207), (-893, 862, 3054), (604, 829, 3169), (-1183, 0, 4095), (1391, 1903, 3135)]
SO100 = [(-2011, 884, 3320), (-1002, 756, 3353), (1436, 868, 3061), (-55, 805, 3153), (877, 0, 4095), (-230, 1899, 3363)]
KOCH = [(1035, 0, 4095), (-3065, 1015, 3088), (2998, 952, 3120), (-1140, 1064, 3167), (2271, 0, 4095), (-845, 2021, 3120)]
FILES = {"so101": ("so101_follower", SO101), "so100": ("so100_follower", SO100), "koch": ("koch_follower", KOCH)}
PROTOCOL = {"so100": "feetech", "so101": "feetech", "koch": "dynamixel"}


def lerobot_json(rows: list[tuple[int, int, int]], drive_modes: dict[str, int] | None = None) -> dict[str, dict[str, int]]:
    return {name: {"id": i + 1, "drive_mode": (drive_modes or {}).get(name, 0), "homing_offset": offset,
                   "range_min": low, "range_max": high}
            for i, (name, (offset, low, high)) in enumerate(zip(MOTORS, rows, strict=True))}


def write_lerobot(tmp_path: Path, arm: str, data: object | None = None, robot_dir: str | None = None) -> Path:
    """Where lerobot-calibrate saves it: calibration/robots/<robot>/<id>.json, indented as draccus dumps it."""
    directory, rows = FILES[arm]
    path = tmp_path / "calibration" / "robots" / (robot_dir or directory) / "my_arm.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(lerobot_json(rows) if data is None else data, indent=4))
    return path


def lerobot_degrees(present: float, low: int, high: int) -> float:
    """LeRobot's MotorNormMode.DEGREES: (val - mid) * 360 / max_res, mid = (min + max) / 2, max_res = 4095."""
    return (present - (low + high) / 2) * 360 / 4095


def lerobot_gripper(present: float, low: int, high: int, drive_mode: int = 0) -> float:
    """LeRobot's MotorNormMode.RANGE_0_100 (clipped to the range; 100 - value with a Feetech drive mode)."""
    norm = (min(high, max(low, present)) - low) / (high - low) * 100
    return 100 - norm if drive_mode else norm


@pytest.mark.parametrize("arm", ["so100", "so101", "koch"])
def test_a_lerobot_file_loads_and_converts_like_lerobot_degrees(arm: str, tmp_path: Path) -> None:
    model = get_arm(arm)
    calibration = load_calibration(write_lerobot(tmp_path, arm), model)
    assert isinstance(calibration, LeRobotCalibration) and calibration.robot == arm
    rows = FILES[arm][1]
    low = np.array([r[1] for r in rows[:5]])
    high = np.array([r[2] for r in rows[:5]])
    # radians = LeRobot's degrees in radians, at the range ends, the middle and in between
    for present in (low, high, (low + high) / 2, low + 0.3 * (high - low), np.full(5, 2047)):
        expected = np.deg2rad([lerobot_degrees(p, lo, hi) for p, lo, hi in zip(present, low, high, strict=True)])
        np.testing.assert_allclose(calibration.to_radians(present), expected, atol=1e-12)
    np.testing.assert_allclose(calibration.to_radians((low + high) / 2), 0.0)  # the URDF zero: mid-range
    # limits from range_min / range_max
    lower, upper = calibration.joint_limits()
    np.testing.assert_allclose(lower, -(high - low) / 2 * 2 * math.pi / 4095)
    np.testing.assert_allclose(upper, (high - low) / 2 * 2 * math.pi / 4095)
    # round trip steps -> radians -> steps, every integer step of the range; beyond it, clipped to the range
    for joint in range(5):
        steps = np.tile((low + high) // 2, (high[joint] - low[joint] + 1, 1))
        steps[:, joint] = np.arange(low[joint], high[joint] + 1)
        assert np.array_equal(calibration.to_steps(calibration.to_radians(steps)), steps)
    assert calibration.to_steps(upper + 0.5).tolist() == high.tolist()
    assert calibration.to_steps(lower - 0.5).tolist() == low.tolist()
    # the gripper: agentrt's command (0 open .. 1 closed) is LeRobot's gripper.pos / 100
    _, g_low, g_high = rows[5]
    for present in (g_low, g_high, (g_low + g_high) // 2, g_low - 50, g_high + 50):
        assert calibration.gripper_from_steps(present) == pytest.approx(lerobot_gripper(present, g_low, g_high) / 100)
    assert (calibration.gripper_to_steps(0.0), calibration.gripper_to_steps(1.0)) == (g_low, g_high)


def test_a_feetech_drive_mode_reverses_the_joint_and_the_gripper_as_lerobot_reads_it(tmp_path: Path) -> None:
    data = lerobot_json(SO101, drive_modes={"elbow_flex": 1, "gripper": 1})
    calibration = load_calibration(write_lerobot(tmp_path, "so101", data), get_arm("so101"))
    plain = load_calibration(write_lerobot(tmp_path / "plain", "so101"), get_arm("so101"))
    present = np.array([1000, 1000, 1000, 1000, 1000])
    flipped, straight = calibration.to_radians(present), plain.to_radians(present)
    assert flipped[2] == -straight[2] and np.array_equal(np.delete(flipped, 2), np.delete(straight, 2))
    _, g_low, g_high = SO101[5]
    assert calibration.gripper_from_steps(g_low + 100) == pytest.approx(lerobot_gripper(g_low + 100, g_low, g_high, 1) / 100)


def test_a_lerobot_calibration_saves_back_in_lerobot_format(tmp_path: Path) -> None:
    path = write_lerobot(tmp_path, "koch")
    calibration = load_calibration(path, get_arm("koch"))
    out = calibration.save(tmp_path / "copy" / "koch.json")
    assert json.loads(out.read_text()) == json.loads(path.read_text())


@pytest.mark.parametrize(("arm", "robot_dir", "data", "message"), [
    ("so101", "koch_follower", None, r"calibrates a LeRobot koch_follower, not a so101: use --arm koch"),
    ("so101", "so100_follower", None, r"calibrates a LeRobot so100_follower, not a so101: use --arm so100"),
    ("so101", "so101_leader", None, r"calibrates a LeRobot so101_leader \(the arm you move by hand\)"),
    ("so101", "elsewhere", lerobot_json(KOCH), r"homing_offset -3065 does not fit a Feetech servo.*--arm koch"),
    ("so101", None, {k: v for k, v in lerobot_json(SO101).items() if k != "wrist_roll"}, r"no motor wrist_roll"),
    ("so101", None, {**lerobot_json(SO101), "base_left_wheel": lerobot_json(SO101)["gripper"]},
     r"motors base_left_wheel are not on a so101"),
    ("koch", None, {**lerobot_json(KOCH), "elbow_flex": {**lerobot_json(KOCH)["elbow_flex"], "id": 7}},
     r"motor elbow_flex has id 7, on a koch it is servo 3"),
    ("so100", None, {**lerobot_json(SO100), "gripper": {"id": 6, "drive_mode": 0, "range_min": 1, "range_max": 9}},
     r"motor gripper: no homing_offset"),
    ("so100", None, {**lerobot_json(SO100), "gripper": {**lerobot_json(SO100)["gripper"], "range_max": "3363"}},
     r"not integers: range_max='3363'"),
    ("koch", None, {**lerobot_json(KOCH), "wrist_flex": {**lerobot_json(KOCH)["wrist_flex"], "range_min": 3167}},
     r"expected 0 <= range_min < range_max <= 4095.*got 3167..3167"),
    ("so100", None, [1, 2, 3], r"is not a valid calibration file \(expected a JSON object, got list\)"),
])
def test_a_lerobot_file_for_another_arm_or_malformed_is_refused_in_one_line(
    arm: str, robot_dir: str | None, data: object, message: str, tmp_path: Path
) -> None:
    path = write_lerobot(tmp_path, arm, data, robot_dir)
    with pytest.raises(ConfigError, match=message) as info:
        load_calibration(path, get_arm(arm))
    assert "\n" not in str(info.value)


def test_malformed_json_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write_lerobot(tmp_path, "so101")
    path.write_text(path.read_text()[:-20])
    with pytest.raises(ConfigError, match=r"is not a valid calibration file") as info:
        load_calibration(path, get_arm("so101"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("arm", ["so101", "koch"])
def test_connect_writes_the_files_offsets_and_limits_torque_off_once_then_moves_within_them(
    arm: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    protocol, rows = PROTOCOL[arm], FILES[arm][1]
    path = write_lerobot(tmp_path, arm)
    with PtyBusEmulator(protocol, ids=IDS, models=get_arm(arm).models_by_id) as emulator:
        bank = emulator.bank
        robot = BusArm(arm_config(protocol, emulator.port, path, robot=arm, workspace_min_m=(-2.0, -2.0, -2.0),
                                  workspace_max_m=(2.0, 2.0, 2.0), max_ee_speed_m_s=100.0))
        with caplog.at_level(logging.WARNING, logger="sims.real.lerobot_calibration"):
            robot.connect()
        try:
            for i, (offset, low, high) in enumerate(rows, start=1):
                assert (bank.value(i, "homing_offset"), bank.value(i, "min_position_limit"),
                        bank.value(i, "max_position_limit")) == (offset, low, high)
            assert wait_until(lambda: bank.torque_writes(1) == IDS)  # torque on again afterwards, holding
            names = [(name, value) for _, name, value in bank.writes]
            first_offset = names.index(("homing_offset", rows[0][0]))
            assert ("torque_enable", 0) in names[:first_offset]  # written with the torque off
            warning = [r.getMessage() for r in caplog.records if "differs" in r.getMessage()]
            assert len(warning) == 1 and "\n" not in warning[0]
            assert f"shoulder_pan (id 1): homing_offset 0 -> {rows[0][0]}, range 0..4095 -> {rows[0][1]}..{rows[0][2]}" \
                in warning[0] or rows[0][1:] == (0, 4095)
            assert f"elbow_flex (id 3): homing_offset 0 -> {rows[2][0]}, range 0..4095 -> {rows[2][1]}..{rows[2][2]}" in warning[0]
            # moves, within the file's ranges
            lower, upper = robot.joint_limits
            for _ in range(300):
                sent = robot.send_action(Action.joint_target(upper + 1.0, gripper=1.0))
            np.testing.assert_allclose(sent.values[:5], upper)
            assert robot.calibration is not None
            expected = robot.calibration.to_steps(upper).tolist()

            def goals() -> list[int]:
                return [bank.value(i, "goal_position") for i in IDS]

            # SYNC_WRITE has no reply: the last goal lands on the emulator's thread a little later
            assert wait_until(lambda: goals()[:5] == expected), (goals(), expected)
            assert all(low <= goal <= high for goal, (_, low, high) in zip(goals(), rows, strict=True))
            goals_now = goals()
            assert goals_now[5] == rows[5][2]  # closed = range_max (LeRobot's gripper.pos 100)
        finally:
            robot.disconnect()
        writes = len(bank.writes)
        robot.connect()  # the servos hold the file now: nothing is rewritten (EEPROM wear)
        robot.disconnect()
        assert not [name for _, name, _ in bank.writes[writes:] if name in ("homing_offset", "min_position_limit")]


def test_a_koch_servo_with_another_drive_mode_is_refused_in_one_line(tmp_path: Path) -> None:
    with PtyBusEmulator("dynamixel", ids=IDS, models=get_arm("koch").models_by_id) as emulator:
        emulator.bank.set_value(3, "drive_mode", 1)
        robot = BusArm(arm_config("dynamixel", emulator.port, write_lerobot(tmp_path, "koch"), robot="koch"))
        with pytest.raises(ConfigError, match=r"drive mode \(reverse bit\) differs: elbow_flex \(id 3\) has 1, the file 0") as info:
            robot.connect()
        assert "\n" not in str(info.value) and not robot.is_connected
        assert emulator.bank.value(1, "homing_offset") == 0  # nothing written


def test_agentrts_own_files_still_load_beside_lerobots(tmp_path: Path) -> None:
    own = nominal_calibration(get_arm("so101")).save(tmp_path / "own.json")
    assert type(load_calibration(own, get_arm("so101"))).__name__ == "Calibration"


def test_the_bridge_cli_serves_a_so101_with_a_lerobot_calibration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_lerobot(tmp_path, "so101")
    with PtyBusEmulator("feetech", ids=IDS) as emulator:
        args = ["bridge", "--arm", "so101", "--port", emulator.port, "--timeout-ms", "200", "--calibration", str(path),
                "--insecure", "--state-port", "0", "--actions-port", "0", "--duration", "1"]
        assert main(args) == 0
        assert [emulator.bank.value(i, "homing_offset") for i in IDS] == [row[0] for row in SO101]
        wrong = write_lerobot(tmp_path, "koch")
        assert main([*args[:8], str(wrong), *args[9:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "calibrates a LeRobot koch_follower, not a so101: use --arm koch" in err[0]


def test_the_bridge_moves_a_so101_by_its_lerobot_calibration(tmp_path: Path) -> None:
    path = write_lerobot(tmp_path, "so101")
    with PtyBusEmulator("feetech", ids=IDS) as emulator:
        robot = BusArm(arm_config("feetech", emulator.port, path, robot="so101", release_after_ms=60000.0))
        bridge = RobotBridge(robot, BridgeConfig(bind="127.0.0.1", state_port=0, actions_port=0, insecure=True))
        stop = threading.Event()
        thread = threading.Thread(target=bridge.run, args=(stop,))
        thread.start()
        try:
            assert bridge.ready.wait(20)
            with Subscriber(bridge.state_address) as states, \
                    Publisher(bridge.actions_address, lossless=True, bind=False) as actions:
                target = np.array([[0.05, 0.05, 0.05, 0.05, 0.05, 0.0]] * 10, np.float32)
                actions.send(ActionChunk("so101", 0, 1, now_ns(), "joint_target", target, 33.3))
                joints = np.zeros(5)
                for _ in range(300):
                    state = states.recv(timeout_ms=5000)
                    assert isinstance(state, RobotState)
                    joints = state.joint_positions
                    if np.allclose(joints, 0.05, atol=2e-3):
                        break
                else:
                    pytest.fail(f"the chunk was not executed: joints {joints}")
        finally:
            stop.set()
            thread.join(timeout=20)
        # 0.05 rad from the middle of each range, at LeRobot's 4095 steps per 360 degrees
        expected = [round((low + high) / 2 + 0.05 * 4095 / (2 * math.pi)) for _, low, high in SO101[:5]]
        assert [emulator.bank.value(i, "goal_position") for i in IDS[:5]] == expected
        assert emulator.bank.value(6, "goal_position") == SO101[5][1]  # gripper 0: open = range_min
