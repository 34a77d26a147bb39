"""Real robot drivers: serial-bus arms (Feetech STS, Dynamixel Protocol 2.0) and the network robot bridge.

    from sims.real import BusArm, BusArmConfig
    arm = BusArm(BusArmConfig(robot="so100", port="/dev/ttyACM0", calibration_path="calib/so100.json"))

Nothing here opens a port or imports pybullet / pyserial / ZeroMQ at import time.
See docs/robots.md.
"""

from __future__ import annotations

from sims.real.arm import BusArm, BusArmConfig
from sims.real.arms import ARMS, ArmModel, get_arm
from sims.real.bus import BusConfig, BusError, ServoBus
from sims.real.calibration import Calibration, Calibrator, load_calibration, nominal_calibration
from sims.real.emulator import BusFaults, PtyBusEmulator, ServoBank
from sims.real.lerobot_calibration import LeRobotCalibration
from sims.real.servos import ServoState, check_servos

__all__ = [
    "ARMS",
    "ArmModel",
    "BusArm",
    "BusArmConfig",
    "BusConfig",
    "BusError",
    "BusFaults",
    "Calibration",
    "Calibrator",
    "LeRobotCalibration",
    "PtyBusEmulator",
    "ServoBank",
    "ServoBus",
    "ServoState",
    "check_servos",
    "get_arm",
    "load_calibration",
    "nominal_calibration",
]
