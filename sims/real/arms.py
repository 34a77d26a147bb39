"""The real arms agentrt drives, described as data: bus protocol, servo ids, joints, URDF.

| name    | arm                           | bus                          | servos |
|---------|-------------------------------|------------------------------|--------|
| so100   | SO-100 (5 joints + gripper)   | Feetech STS3215, 1 Mbaud     | ids 1-5 arm, 6 gripper |
| so101   | SO-101 (5 joints + gripper)   | Feetech STS3215, 1 Mbaud     | ids 1-5 arm, 6 gripper |
| koch    | Koch v1.1 follower (5 + gripper)     | Dynamixel XL430-W250 (ids 1-2), XL330-M288 (3-6), Protocol 2.0, 1 Mbaud | ids 1-5 arm, 6 gripper |

The SO-100 and SO-101 are the same bus and servos (LeRobot drives both with one
class); they are separate rows so a calibration names the arm it belongs to.
All use the bundled approximate URDF ``urdf/so100_approx.urdf`` (see its
header); the Koch arm's real link lengths differ, so give its own URDF with the
same joint names (``BusArmConfig.urdf_path``) for end-effector actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentrt.errors import ConfigError

__all__ = ["ArmModel", "ARMS", "get_arm", "URDF_DIR"]

URDF_DIR = Path(__file__).parent / "urdf"


@dataclass(frozen=True)
class ArmModel:
    """One arm: which servo drives which URDF joint.

    ``directions``: +1 when a growing servo position turns the URDF joint positively.
    ``gripper_open_rad``: the URDF jaw angle at gripper command 0 (closed is 0 rad).
    """

    name: str
    protocol: str
    joint_names: tuple[str, ...]  # arm joints, URDF names, base to tip
    ids: tuple[int, ...]  # servo id of each arm joint
    gripper_name: str
    gripper_id: int
    urdf: str  # file name in sims/real/urdf
    ee_link: str = "tcp"
    roll_joint: str = "wrist_roll"  # a 7-value ee_delta's droll turns this joint
    directions: tuple[int, ...] = (1, 1, 1, 1, 1)
    gripper_open_rad: float = 1.2
    baudrate: int = 1_000_000
    servo_models: tuple[int, ...] = ()  # model number of each servo of all_ids; () = the protocol's default servo

    @property
    def all_ids(self) -> list[int]:
        return [*self.ids, self.gripper_id]

    @property
    def models_by_id(self) -> dict[int, int]:
        """The model number connect expects per servo id ({} = the protocol's default servo)."""
        return dict(zip(self.all_ids, self.servo_models, strict=True)) if self.servo_models else {}

    @property
    def urdf_path(self) -> Path:
        return URDF_DIR / self.urdf


_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")

ARMS: dict[str, ArmModel] = {
    "so100": ArmModel(
        name="so100", protocol="feetech", joint_names=_JOINTS, ids=(1, 2, 3, 4, 5),
        gripper_name="jaw", gripper_id=6, urdf="so100_approx.urdf",
        servo_models=(777,) * 6,  # STS3215
    ),
    "so101": ArmModel(
        name="so101", protocol="feetech", joint_names=_JOINTS, ids=(1, 2, 3, 4, 5),
        gripper_name="jaw", gripper_id=6, urdf="so100_approx.urdf",
        servo_models=(777,) * 6,  # STS3215
    ),
    "koch": ArmModel(
        name="koch", protocol="dynamixel", joint_names=_JOINTS, ids=(1, 2, 3, 4, 5),
        gripper_name="jaw", gripper_id=6, urdf="so100_approx.urdf",
        servo_models=(1060, 1060, 1200, 1200, 1200, 1200),  # XL430-W250 at the shoulder, XL330-M288 after
    ),
}


def get_arm(name: str) -> ArmModel:
    """The table row for ``name``; raises ConfigError naming the known arms."""
    try:
        return ARMS[name]
    except KeyError:
        raise ConfigError(f"unknown real arm '{name}': expected one of {', '.join(ARMS)}") from None
