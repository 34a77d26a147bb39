"""What ``BusArm.connect`` checks before anything moves, as a careful person would.

For every servo of the arm, in this order, before the first write:

1. PING it and read its model number (Dynamixel: the PING status carries it;
   Feetech: register 3, as the vendor's SDK does after its PING). A servo of
   another model stops the connect: one line naming the servo id, the model
   found and the one expected.
2. Read its operating mode, torque enable, EEPROM lock (Feetech) and present
   position.
3. A servo not in position mode: with its torque off, position mode is set
   (on Feetech the EEPROM is unlocked for the write and the lock put back as it
   was) and a warning says so; with its torque on, nothing is changed and the
   connect stops with what to do (changing the mode of a servo holding a load
   would drop it or make it jump).

Nothing is written when a check fails: the servos are left as they were found.
The caller then starts from the present positions read here (goal := present,
then torque on), so the arm never jumps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agentrt.errors import RobotError
from sims.real.bus import ServoBus

__all__ = ["ServoState", "check_servos"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServoState:
    """One servo as connect found it."""

    servo_id: int
    model_number: int
    operating_mode: int  # after connect set position mode, if it did
    torque_enabled: bool
    locked: bool | None  # Feetech's EEPROM lock (register 55); None where the servo has none (Dynamixel)
    position_steps: int
    mode_set: bool = False  # connect changed the operating mode to position


def check_servos(bus: ServoBus, arm: str, expected_models: dict[int, int] | None = None) -> dict[int, ServoState]:
    """Check and prepare every servo on ``bus`` (see the module docstring); raises ``RobotError`` in one line."""
    codec = bus.codec
    expected_models = expected_models or {}
    for servo_id in bus.ids:
        reply = bus.ping(servo_id)
        found = codec.model_from_ping(reply)
        if found is None:
            found = bus.read(servo_id, "model_number")
        expected = expected_models.get(servo_id, codec.model_number)
        if found != expected:
            raise RobotError(
                f"servo {servo_id} on {bus.where} is a {codec.model_name(found)} (model number {found}), expected a "
                f"{codec.model_name(expected)} ({expected}) for the {arm}: check --arm and the servo ids (the vendor's tool)"
            )
    models = {i: expected_models.get(i, codec.model_number) for i in bus.ids}
    modes = bus.sync_read("operating_mode")
    torque = bus.sync_read("torque_enable")
    locks = bus.sync_read(codec.lock_register) if codec.lock_register else {}
    positions = bus.sync_read("present_position")
    wrong = [i for i in bus.ids if modes[i] not in codec.position_modes]
    for servo_id in wrong:
        if torque[servo_id]:
            raise RobotError(
                f"servo {servo_id} on {bus.where} is in {codec.mode_name(modes[servo_id])} mode (operating_mode "
                f"{modes[servo_id]}) with its torque on: agentrt drives position mode ({codec.position_mode}) and changes "
                f"it only with the torque off; stop the program holding the arm or power-cycle it, then connect again"
            )
    for servo_id in wrong:
        _set_position_mode(bus, servo_id, modes[servo_id], bool(locks.get(servo_id, 0)))
    states = {
        i: ServoState(i, models[i], codec.position_mode if i in wrong else modes[i], bool(torque[i]),
                      bool(locks[i]) if codec.lock_register else None, positions[i], i in wrong)
        for i in bus.ids
    }
    already = [i for i in bus.ids if torque[i]]
    if already:
        log.warning("servos %s on %s had their torque on already: starting from their present positions", already, bus.where)
    return states


def _set_position_mode(bus: ServoBus, servo_id: int, mode: int, locked: bool) -> None:
    """Position mode for a servo whose torque is off; the EEPROM lock (Feetech) opened and put back."""
    codec = bus.codec
    if locked and codec.lock_register:
        bus.write(servo_id, codec.lock_register, 0)
    try:
        bus.write(servo_id, "operating_mode", codec.position_mode)
    finally:
        if locked and codec.lock_register:
            bus.write(servo_id, codec.lock_register, 1)
    now = bus.read(servo_id, "operating_mode")
    if now != codec.position_mode:
        raise RobotError(
            f"servo {servo_id} on {bus.where} stays in {codec.mode_name(now)} mode (operating_mode {now}) after "
            f"writing {codec.position_mode}: set position mode with the vendor's tool (Feetech FD, Dynamixel Wizard)"
        )
    log.warning("servo %d on %s: operating mode was %s (%d), set to %s (%d) (its torque was off)", servo_id,
                bus.where, codec.mode_name(mode), mode, codec.mode_name(codec.position_mode), codec.position_mode)
