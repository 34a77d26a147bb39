"""Fixtures: an emulated servo bus on a pseudo-terminal, per protocol, and arms on it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sims.real.arm import BusArm, BusArmConfig
from sims.real.arms import get_arm
from sims.real.calibration import nominal_calibration
from sims.real.emulator import PtyBusEmulator

pytest.importorskip("serial", reason="the serial-bus drivers need pyserial (pip install pyserial)")

IDS = [1, 2, 3, 4, 5, 6]
ARM_OF = {"feetech": "so100", "dynamixel": "koch"}


@pytest.fixture(params=["feetech", "dynamixel"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def emulator(protocol: str) -> Iterator[PtyBusEmulator]:
    with PtyBusEmulator(protocol, ids=IDS, models=get_arm(ARM_OF[protocol]).models_by_id) as emulator:
        yield emulator


@pytest.fixture
def calibration_file(protocol: str, tmp_path: Path) -> Path:
    return nominal_calibration(get_arm(ARM_OF[protocol])).save(tmp_path / "calibration.json")


def arm_config(protocol: str, port: str, calibration: Path, **overrides: object) -> BusArmConfig:
    """An arm on the emulator; a generous timeout, so a loaded machine does not fail the tests."""
    fields: dict[str, object] = {"robot": ARM_OF[protocol], "port": port, "calibration_path": str(calibration),
                                 "watchdog_thread": False, "timeout_ms": 200.0, **overrides}
    return BusArmConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
def arm(protocol: str, emulator: PtyBusEmulator, calibration_file: Path) -> Iterator[BusArm]:
    robot = BusArm(arm_config(protocol, emulator.port, calibration_file))
    robot.connect()
    try:
        yield robot
    finally:
        robot.disconnect()


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``condition`` (the emulator answers on its own thread; unanswered writes land a little later)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
