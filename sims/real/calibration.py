"""Joint calibration of a bus arm: servo steps <-> URDF joint radians, joint ranges, gripper span.

A servo reports its position in steps (0..4095 per turn). Calibration records,
per joint, the step reading at the URDF's zero pose (``zero_steps``), the
direction, and the range the joint was moved through (``min_steps`` ..
``max_steps``); for the gripper, its closed and open readings. Commands are
clipped to the recorded range. Saved as JSON::

    {"version": 1, "robot": "so100", "protocol": "feetech", "steps_per_rev": 4096,
     "joints": [{"name": "shoulder_pan", "id": 1, "zero_steps": 2051, "direction": 1,
                 "min_steps": 780, "max_steps": 3310}, ...],
     "gripper": {"name": "jaw", "id": 6, "closed_steps": 2010, "open_steps": 2890}}

A LeRobot calibration file (``lerobot-calibrate``) is read unchanged too:
``load_calibration`` tells the two formats apart (``sims.real.lerobot_calibration``).

Recording one (``agentrt bridge --arm so100 --port ... --calibrate FILE`` walks
you through it): ``Calibrator.begin()`` turns the torque off;
``capture_zero()`` with the arm in the zero pose and the gripper closed;
``sample()`` repeatedly while you move every joint through its whole range and
open the gripper fully; ``finish()`` returns the ``Calibration``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from agentrt.errors import ConfigError, RobotError
from sims.real.arms import ArmModel
from sims.real.bus import ServoBus

__all__ = ["JointCalibration", "GripperCalibration", "Calibration", "Calibrator", "load_calibration", "nominal_calibration"]

VERSION = 1
MIN_RANGE_STEPS = 100  # a joint moved less than this during calibration was not moved


@dataclass
class JointCalibration:
    name: str
    id: int
    zero_steps: float  # reading at the URDF zero pose (LeRobot's mid-range may fall on a half step)
    direction: int  # +1 or -1
    min_steps: int
    max_steps: int

    def validate(self, steps_per_rev: int) -> None:
        if self.direction not in (1, -1):
            raise ConfigError(f"calibration of joint {self.name}: direction must be 1 or -1, got {self.direction}")
        if not 0 <= self.min_steps < self.max_steps < steps_per_rev:
            raise ConfigError(
                f"calibration of joint {self.name}: expected 0 <= min_steps < max_steps < {steps_per_rev}, "
                f"got {self.min_steps}..{self.max_steps}; recalibrate"
            )


@dataclass
class GripperCalibration:
    name: str
    id: int
    closed_steps: int
    open_steps: int


@dataclass
class Calibration:
    robot: str
    protocol: str
    steps_per_rev: int
    joints: list[JointCalibration]
    gripper: GripperCalibration | None = None

    def __post_init__(self) -> None:
        for joint in self.joints:
            joint.validate(self.steps_per_rev)
        if self.gripper is not None and self.gripper.closed_steps == self.gripper.open_steps:
            raise ConfigError(f"calibration of gripper {self.gripper.name}: open and closed readings are equal; recalibrate")

    # -- conversions -----------------------------------------------------------------------------
    @property
    def _scale(self) -> float:
        """Radians per step."""
        return 2 * math.pi / self.steps_per_rev

    def to_radians(self, steps: np.ndarray) -> np.ndarray:
        """Arm joint readings (steps, one per joint) -> radians."""
        zero = np.array([j.zero_steps for j in self.joints], dtype=np.float64)
        sign = np.array([j.direction for j in self.joints], dtype=np.float64)
        return sign * (np.asarray(steps, dtype=np.float64) - zero) * self._scale

    def to_steps(self, radians: np.ndarray) -> np.ndarray:
        """Arm joint positions (radians) -> steps, clipped to the calibrated ranges."""
        zero = np.array([j.zero_steps for j in self.joints], dtype=np.float64)
        sign = np.array([j.direction for j in self.joints], dtype=np.float64)
        steps = np.rint(zero + sign * np.asarray(radians, dtype=np.float64) / self._scale)
        low, high = self.step_limits()
        return np.clip(steps, low, high).astype(np.int64)

    def step_limits(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([j.min_steps for j in self.joints]), np.array([j.max_steps for j in self.joints]))

    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """The calibrated range of each arm joint, in radians (lower, upper)."""
        a = self.to_radians(self.step_limits()[0])
        b = self.to_radians(self.step_limits()[1])
        return np.minimum(a, b), np.maximum(a, b)

    def gripper_to_steps(self, command: float) -> int:
        """Gripper command 0 (open) .. 1 (closed) -> steps."""
        g = self._gripper()
        return int(round(g.open_steps + (g.closed_steps - g.open_steps) * float(np.clip(command, 0.0, 1.0))))

    def gripper_from_steps(self, steps: int) -> float:
        g = self._gripper()
        return float(np.clip((steps - g.open_steps) / (g.closed_steps - g.open_steps), 0.0, 1.0))

    def _gripper(self) -> GripperCalibration:
        if self.gripper is None:
            raise RobotError(f"calibration of {self.robot} has no gripper")
        return self.gripper

    def apply_to_motors(self, bus: ServoBus) -> None:
        """Bring the servos' own calibration registers in line with this file on connect (none for ours)."""

    # -- files ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": VERSION, **asdict(self)}
        out.write_text(json.dumps(data, indent=1) + "\n")
        return out

    def check_matches(self, model: ArmModel, where: str) -> None:
        ids = [j.id for j in self.joints]
        if self.robot != model.name or ids != list(model.ids) or self.protocol != model.protocol:
            raise ConfigError(
                f"{where} calibrates a {self.robot} ({self.protocol}, ids {ids}), not a {model.name} "
                f"({model.protocol}, ids {list(model.ids)}): give the right file or recalibrate"
            )


def load_calibration(path: str | Path, model: ArmModel) -> Calibration:
    """Read and validate a calibration file for ``model``; ConfigError saying how to make one."""
    file = Path(path)
    how = f"run `agentrt bridge --arm {model.name} --port PORT --calibrate {file}`"
    if not file.exists():
        raise ConfigError(f"no calibration file at {file}: {how}")
    try:
        data = json.loads(file.read_text())
    except ValueError as exc:
        raise ConfigError(f"{file} is not a valid calibration file ({exc}); {how}") from None
    if isinstance(data, dict) and data and "version" not in data and "joints" not in data:
        # LeRobot's format: motor name -> its calibration
        from sims.real.lerobot_calibration import lerobot_calibration

        return lerobot_calibration(data, model, file)
    try:
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if data.pop("version", None) != VERSION:
            raise ConfigError(f"{file}: expected calibration version {VERSION}; {how}")
        gripper = data.pop("gripper", None)
        calibration = Calibration(
            joints=[JointCalibration(**j) for j in data.pop("joints")],
            gripper=GripperCalibration(**gripper) if gripper else None,
            **data,
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(f"{file} is not a valid calibration file ({exc}); {how}") from None
    calibration.check_matches(model, str(file))
    return calibration


def nominal_calibration(model: ArmModel, steps_per_rev: int = 4096) -> Calibration:
    """A made-up calibration (zero at mid-turn, +-100 degrees): for the dry run and the emulator only."""
    mid, span = steps_per_rev // 2, int(steps_per_rev * 100 / 360)
    joints = [
        JointCalibration(name, servo_id, mid, direction, mid - span, mid + span)
        for name, servo_id, direction in zip(model.joint_names, model.ids, model.directions, strict=True)
    ]
    open_steps = mid + int(round(model.gripper_open_rad / (2 * math.pi) * steps_per_rev))
    return Calibration(model.name, model.protocol, steps_per_rev, joints, GripperCalibration(model.gripper_name, model.gripper_id, mid, open_steps))


class Calibrator:
    """Records a calibration from a human moving the arm with the torque off (see the module docstring)."""

    def __init__(self, bus: ServoBus, model: ArmModel) -> None:
        self.bus, self.model = bus, model
        self._zero: dict[int, int] = {}
        self._low: dict[int, int] = {}
        self._high: dict[int, int] = {}

    def begin(self) -> None:
        """Torque off, so the arm can be moved by hand (support it: it will sag)."""
        self.bus.set_torque(False, self.model.all_ids)

    def capture_zero(self) -> dict[int, int]:
        """The arm is in the zero pose with the gripper closed: record every servo's reading."""
        self._zero = self.bus.sync_read("present_position", self.model.all_ids)
        self._low, self._high = dict(self._zero), dict(self._zero)
        return dict(self._zero)

    def sample(self) -> dict[int, int]:
        """Read every servo once and widen the recorded ranges; call often while the joints move."""
        if not self._zero:
            raise RobotError("Calibrator.sample() before capture_zero(): put the arm in the zero pose first")
        reading = self.bus.sync_read("present_position", self.model.all_ids)
        for servo_id, steps in reading.items():
            self._low[servo_id] = min(self._low[servo_id], steps)
            self._high[servo_id] = max(self._high[servo_id], steps)
        return reading

    def finish(self) -> Calibration:
        m = self.model
        if not self._zero:
            raise RobotError("Calibrator.finish() before capture_zero()")
        stuck = [
            name for name, i in zip((*m.joint_names, m.gripper_name), m.all_ids, strict=True)
            if self._high[i] - self._low[i] < MIN_RANGE_STEPS
        ]
        if stuck:
            raise RobotError(
                f"joints {', '.join(stuck)} moved less than {MIN_RANGE_STEPS} steps: move every joint through its whole "
                f"range (and open the gripper fully) while sampling, then finish again"
            )
        joints = [
            JointCalibration(name, i, self._zero[i], d, self._low[i], self._high[i])
            for name, i, d in zip(m.joint_names, m.ids, m.directions, strict=True)
        ]
        g = m.gripper_id
        closed = self._zero[g]
        opened = self._high[g] if self._high[g] - closed >= closed - self._low[g] else self._low[g]
        return Calibration(m.name, m.protocol, self.bus.codec.steps_per_rev, joints, GripperCalibration(m.gripper_name, g, closed, opened))
