"""The robot description table: every arm the simulator can load, described as data.

Nothing else in sims/ names a robot's joints or links; code reads them from a
``RobotDescription`` so the Franka Panda is one row, not an assumption. All
URDFs here ship inside ``pybullet_data``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agentrt.errors import ConfigError

__all__ = ["RobotDescription", "ROBOTS", "get_description"]


@dataclass(frozen=True)
class RobotDescription:
    """Where a robot's parts are in its URDF, and where it rests.

    Joint indices are PyBullet joint indices. ``gripper_open`` / ``gripper_closed``
    are the finger joint positions at gripper command 0 and 1; a robot without a
    gripper has ``gripper_joints == ()`` and always reports gripper 0. The
    end-effector pose everywhere is the tool point: ``ee_link`` moved by
    ``tcp_offset_m`` in that link's frame.
    """

    name: str
    urdf: str  # relative to pybullet_data
    arm_joints: tuple[int, ...]
    ee_link: int
    home: tuple[float, ...]  # arm joint positions at rest, radians
    ee_down_euler: tuple[float, float, float]  # ee orientation that points the tool at the floor
    gripper_joints: tuple[int, ...] = ()
    gripper_open: float = 0.0
    gripper_closed: float = 0.0
    gripper_force_n: float = 0.0
    arm_force_n: float = 200.0  # motor force cap for position control
    tcp_offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)  # tool point in the ee link's frame
    base_position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    reach_m: float = 0.8  # comfortable horizontal reach from the base, for scene sampling

    @property
    def has_gripper(self) -> bool:
        return bool(self.gripper_joints)


ROBOTS: dict[str, RobotDescription] = {
    "panda": RobotDescription(
        name="panda",
        urdf="franka_panda/panda.urdf",
        arm_joints=(0, 1, 2, 3, 4, 5, 6),
        ee_link=11,  # panda_grasptarget: the point between the fingertips
        home=(0.0, -0.3, 0.0, -2.2, 0.0, 2.0, math.pi / 4),
        ee_down_euler=(math.pi, 0.0, 0.0),
        gripper_joints=(9, 10),
        gripper_open=0.04,
        gripper_closed=0.0,
        gripper_force_n=60.0,
        arm_force_n=240.0,
        reach_m=0.8,
    ),
    "kuka_iiwa": RobotDescription(
        name="kuka_iiwa",
        urdf="kuka_iiwa/model.urdf",
        arm_joints=(0, 1, 2, 3, 4, 5, 6),
        ee_link=6,  # flange; no gripper in this URDF
        home=(0.0, 0.5, 0.0, -1.6, 0.0, 1.0, 0.0),
        ee_down_euler=(0.0, math.pi, 0.0),
        arm_force_n=300.0,
        reach_m=0.8,
    ),
    "xarm6": RobotDescription(
        name="xarm6",
        urdf="xarm/xarm6_with_gripper.urdf",
        arm_joints=(1, 2, 3, 4, 5, 6),
        ee_link=7,  # gripper base; the tool point is between the finger pads, below it
        tcp_offset_m=(0.0, 0.0, 0.15),
        home=(0.0, 0.0, -0.8, 0.0, 0.8, 0.0),
        ee_down_euler=(math.pi, 0.0, 0.0),
        # The xArm gripper is a closed linkage that URDF cannot express; driving all
        # six knuckle joints to the same angle approximates it.
        gripper_joints=(8, 9, 10, 11, 12, 13),
        gripper_open=0.0,
        gripper_closed=0.85,
        gripper_force_n=20.0,
        arm_force_n=50.0,
        reach_m=0.6,
    ),
}


def get_description(name: str) -> RobotDescription:
    """The table row for ``name``; raises ConfigError naming the known robots."""
    try:
        return ROBOTS[name]
    except KeyError:
        raise ConfigError(f"unknown robot '{name}': expected one of {', '.join(ROBOTS)}") from None
