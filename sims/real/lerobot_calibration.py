"""LeRobot calibration files, used unchanged: SO-100 / SO-101 (Feetech STS3215) and Koch (Dynamixel X).

``lerobot-calibrate`` (lerobot >= 0.2) saves
``~/.cache/huggingface/lerobot/calibration/robots/<robot>/<id>.json`` (``<robot>``:
``so100_follower``, ``so101_follower``, ``so_follower``, ``koch_follower``), one
``MotorCalibration`` per motor name::

    {"shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1470, "range_min": 758, "range_max": 3292},
     "shoulder_lift": {...}, "elbow_flex": {...}, "wrist_flex": {...}, "wrist_roll": {...}, "gripper": {"id": 6, ...}}

What LeRobot does with it (``motors_bus.py``, ``feetech.py``, ``dynamixel.py``):

- ``homing_offset`` goes into the servo's Homing_Offset register, so Present_Position
  already includes it (Feetech: present = actual - offset; Dynamixel: present = actual + offset).
- ``range_min`` / ``range_max``: Present_Position (after the offset) at the ends of the
  joint's travel; also written to Min/Max_Position_Limit, so the servo refuses goals outside.
  Full-turn motors get 0..4095 (SO: wrist_roll; Koch: shoulder_pan and wrist_roll).
- On connect LeRobot reads those registers back and, where they differ from the file,
  asks, then writes the file's values (``is_calibrated``, ``write_calibration``). agentrt
  does the same with the torque off (``apply_to_motors``), without the prompt: giving
  ``--calibration FILE`` is the answer.
- ``drive_mode``: Feetech: applied in software (negates range / gripper values), never
  written; Dynamixel: the servo's Drive_Mode register reverses in hardware, LeRobot
  reads it and never writes it. Its own calibration always saves 0.
- Normalized values: degrees (SO default) ``(present - mid) * 360 / 4095`` with
  ``mid = (range_min + range_max) / 2``, drive mode ignored; range_m100_100 ``0`` at
  ``mid``; gripper range_0_100 ``(present - range_min) / (range_max - range_min) * 100``
  (``100 -`` that with a Feetech drive mode 1).

agentrt's joint radians are LeRobot's degrees in radians, the values LeRobot's own
kinematics feeds the SO-101 URDF, so **the URDF zero is the middle of each joint's
calibrated range**::

    q = direction * (present - (range_min + range_max) / 2) * 2 pi / 4095      direction = -1 for a Feetech drive_mode 1
    gripper (0 open .. 1 closed) = LeRobot's gripper.pos / 100                   open = range_min, closed = range_max

Joint limits are ``range_min`` .. ``range_max``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agentrt.errors import ConfigError, RobotError
from sims.real.arms import ArmModel
from sims.real.bus import ServoBus
from sims.real.calibration import Calibration, GripperCalibration, JointCalibration

__all__ = ["MotorCalibration", "LeRobotCalibration", "lerobot_calibration", "LEROBOT_GRIPPER"]

log = logging.getLogger(__name__)

LEROBOT_GRIPPER = "gripper"  # LeRobot's name of the gripper motor (agentrt's URDF calls the joint "jaw")
MAX_RES = 4095  # LeRobot's model resolution - 1: the denominator of its degrees (both STS3215 and XL330/XL430)
FEETECH_OFFSET_MAX = 2047  # the STS homing offset is sign-magnitude with its sign at bit 11
# The directory LeRobot saves a calibration in names the robot type; these fit each agentrt arm.
FOLLOWER_DIRS = {"so100": ("so100_follower", "so_follower"), "so101": ("so101_follower", "so_follower"),
                 "koch": ("koch_follower",)}
LEADER_DIRS = ("so100_leader", "so101_leader", "so_leader", "koch_leader")
_FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


@dataclass
class MotorCalibration:
    """One motor of a LeRobot calibration file, field for field (LeRobot's ``MotorCalibration``)."""

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int


@dataclass
class LeRobotCalibration(Calibration):
    """A ``Calibration`` read from a LeRobot file; it also writes the file's registers into the servos."""

    motors: dict[str, MotorCalibration] = field(default_factory=dict)  # the file, as read
    source: str = ""

    @property
    def _scale(self) -> float:
        return 2 * math.pi / MAX_RES  # LeRobot's degrees: 360 / 4095 per step

    def save(self, path: str | Path) -> Path:
        """Write it back in LeRobot's format (as draccus dumps it), so LeRobot reads it too."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({name: asdict(m) for name, m in self.motors.items()}, indent=4))
        return out

    def apply_to_motors(self, bus: ServoBus) -> None:
        """Write the file's homing offsets and position limits where the servos differ, torque off, as LeRobot does."""
        names = {m.id: name for name, m in self.motors.items()}
        ids = list(names)
        if self.protocol == "dynamixel":  # the servo applies its drive mode; LeRobot never writes it, nor do we
            modes = bus.sync_read("drive_mode", ids)
            wrong = [f"{names[i]} (id {i}) has {modes[i] & 1}, the file {self.motors[names[i]].drive_mode}"
                     for i in ids if modes[i] & 1 != self.motors[names[i]].drive_mode]
            if wrong:
                raise ConfigError(
                    f"{self.source}: drive mode (reverse bit) differs: {'; '.join(wrong)}: LeRobot does not write it "
                    f"either; set Drive_Mode with Dynamixel Wizard or recalibrate with lerobot-calibrate"
                )
        wanted = {"homing_offset": {i: self.motors[names[i]].homing_offset for i in ids},
                  "min_position_limit": {i: self.motors[names[i]].range_min for i in ids},
                  "max_position_limit": {i: self.motors[names[i]].range_max for i in ids}}
        before = {reg: bus.sync_read(reg, ids) for reg in wanted}
        changes = {reg: {i: v for i, v in values.items() if before[reg][i] != v} for reg, values in wanted.items()}
        if not any(changes.values()):
            log.info("%s: the servos already hold the calibration of %s", self.robot, self.source)
            return
        shown = "; ".join(_difference(names[i], i, before, wanted) for i in ids if any(i in c for c in changes.values()))
        log.warning("%s: the servos' calibration differs from %s (%s): writing the file's values, torque off, "
                    "as LeRobot does", self.robot, self.source, shown)
        bus.set_torque(False, ids)
        if self.protocol == "feetech":
            bus.sync_write("lock", {i: 0 for i in ids})  # unlock the EEPROM, as LeRobot's disable_torque does
        for reg, values in changes.items():
            for servo_id, value in values.items():
                bus.write(servo_id, reg, value)
        if self.protocol == "feetech":
            bus.sync_write("lock", {i: 1 for i in ids})
        for reg, values in changes.items():
            now = bus.sync_read(reg, ids)
            kept = [f"{names[i]} {reg} {now[i]} (wrote {v})" for i, v in values.items() if now[i] != v]
            if kept:
                raise RobotError(f"{self.robot}: the servos did not take the calibration of {self.source}: {'; '.join(kept)}; "
                                 f"power-cycle the arm and connect again")


def _difference(name: str, servo_id: int, servos: dict[str, dict[int, int]], file: dict[str, dict[int, int]]) -> str:
    """``elbow_flex (id 3): homing_offset 0 -> -893, range 0..4095 -> 862..3054`` (what differs only)."""
    parts = []
    if servos["homing_offset"][servo_id] != file["homing_offset"][servo_id]:
        parts.append(f"homing_offset {servos['homing_offset'][servo_id]} -> {file['homing_offset'][servo_id]}")
    ranges = [(d["min_position_limit"][servo_id], d["max_position_limit"][servo_id]) for d in (servos, file)]
    if ranges[0] != ranges[1]:
        parts.append(f"range {ranges[0][0]}..{ranges[0][1]} -> {ranges[1][0]}..{ranges[1][1]}")
    return f"{name} (id {servo_id}): {', '.join(parts)}"


def lerobot_calibration(data: dict[str, object], model: ArmModel, file: Path) -> LeRobotCalibration:
    """A LeRobot calibration (parsed JSON ``data`` of ``file``) for ``model``; ConfigError in one line if it does not fit."""
    _check_robot_dir(file, model)
    names = (*model.joint_names, LEROBOT_GRIPPER)
    ids = dict(zip(names, model.all_ids, strict=True))
    missing = [n for n in names if n not in data]
    extra = [n for n in data if n not in ids]
    if missing or extra:
        raise ConfigError(
            f"{file} is not a LeRobot calibration of a {model.name}: "
            + (f"no motor {', '.join(missing)}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"motors {', '.join(extra)} are not on a {model.name}" if extra else "")
            + f"; expected the motors {', '.join(names)}: give this arm's file"
        )
    motors = {name: _motor(file, name, data[name]) for name in names}
    for name, motor in motors.items():
        _check_motor(file, model, name, motor, ids[name])
    feetech = model.protocol == "feetech"
    joints = []
    for name, direction in zip(model.joint_names, model.directions, strict=True):
        m = motors[name]
        sign = -direction if feetech and m.drive_mode else direction  # a Feetech drive mode 1 reverses the joint
        joints.append(JointCalibration(name, m.id, (m.range_min + m.range_max) / 2, sign, m.range_min, m.range_max))
    g = motors[LEROBOT_GRIPPER]
    closed, opened = g.range_max, g.range_min
    if feetech and g.drive_mode:  # LeRobot reads a Feetech gripper as 100 - value then
        closed, opened = opened, closed
    gripper = GripperCalibration(model.gripper_name, g.id, closed, opened)
    return LeRobotCalibration(model.name, model.protocol, MAX_RES + 1, joints, gripper, motors=motors, source=str(file))


def _check_robot_dir(file: Path, model: ArmModel) -> None:
    robot_dir = file.parent.name
    if robot_dir in LEADER_DIRS:
        raise ConfigError(f"{file} calibrates a LeRobot {robot_dir} (the arm you move by hand), not the {model.name} "
                          f"follower: give the file from calibration/robots/{FOLLOWER_DIRS[model.name][0]}/")
    known = [d for dirs in FOLLOWER_DIRS.values() for d in dirs]
    if robot_dir in known and robot_dir not in FOLLOWER_DIRS[model.name]:
        fits = [arm for arm, dirs in FOLLOWER_DIRS.items() if robot_dir in dirs]
        raise ConfigError(f"{file} calibrates a LeRobot {robot_dir}, not a {model.name}: use --arm {fits[0]} "
                          f"or give the {model.name}'s file (calibration/robots/{FOLLOWER_DIRS[model.name][0]}/)")


def _motor(file: Path, name: str, entry: object) -> MotorCalibration:
    if not isinstance(entry, dict):
        raise ConfigError(f"{file}: motor {name} is {type(entry).__name__}, expected an object with {', '.join(_FIELDS)}")
    missing = [f for f in _FIELDS if f not in entry]
    wrong = [f"{f}={entry[f]!r}" for f in _FIELDS if f in entry and (type(entry[f]) is not int)]
    extra = [f for f in entry if f not in _FIELDS]
    if missing or wrong or extra:
        problems = ([f"no {', '.join(missing)}"] if missing else []) + ([f"not integers: {', '.join(wrong)}"] if wrong else []) \
            + ([f"unknown fields {', '.join(extra)}"] if extra else [])
        raise ConfigError(f"{file}: motor {name}: {'; '.join(problems)}; expected LeRobot's {', '.join(_FIELDS)} "
                          f"(recalibrate with lerobot-calibrate)")
    return MotorCalibration(**{f: entry[f] for f in _FIELDS})


def _check_motor(file: Path, model: ArmModel, name: str, m: MotorCalibration, servo_id: int) -> None:
    where = f"{file}: motor {name}"
    if m.id != servo_id:
        raise ConfigError(f"{where} has id {m.id}, on a {model.name} it is servo {servo_id}: give this arm's file "
                          f"or set the servo ids as LeRobot's setup does (lerobot-setup-motors)")
    if m.drive_mode not in (0, 1):
        raise ConfigError(f"{where}: drive_mode must be 0 or 1, got {m.drive_mode}")
    if not 0 <= m.range_min < m.range_max <= MAX_RES:
        raise ConfigError(f"{where}: expected 0 <= range_min < range_max <= {MAX_RES} (one turn: agentrt drives the servos "
                          f"in position mode), got {m.range_min}..{m.range_max}; recalibrate with lerobot-calibrate")
    if model.protocol == "feetech" and abs(m.homing_offset) > FEETECH_OFFSET_MAX:
        raise ConfigError(f"{where}: homing_offset {m.homing_offset} does not fit a Feetech servo (-{FEETECH_OFFSET_MAX}.."
                          f"{FEETECH_OFFSET_MAX}): is it a Koch (Dynamixel) calibration? Use --arm koch or this arm's file")
