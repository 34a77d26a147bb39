"""Signed registers: Feetech STS sign-magnitude (a sign bit per register), Dynamixel two's complement.

Feetech's SMS/STS SDK reads present position and speed with ``scs_tohost(value, 15)`` and writes goal speed
with ``scs_toscs(value, 15)``: bit 15 is the sign, the bits below the magnitude (-100 is 0x8064, bytes 64 80).
The homing offset carries its sign at bit 11 and the present load at bit 10 (LeRobot's STS encodings table).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrt.errors import RobotError
from sims.real.bus import BusConfig, LoopbackTransport, ServoBus
from sims.real.dynamixel import DynamixelCodec
from sims.real.emulator import ServoBank
from sims.real.feetech import STS_SIGN_BITS, FeetechCodec
from sims.real.packets import decode_sign_magnitude, encode_sign_magnitude

FEETECH = FeetechCodec()


@pytest.mark.parametrize("name", ["present_position", "present_speed", "goal_speed", "goal_position"])
def test_minus_100_is_64_80_at_bit_15(name: str) -> None:
    assert STS_SIGN_BITS[name] == 15
    assert FEETECH.encode(name, -100) == bytes.fromhex("6480")
    assert FEETECH.decode(name, bytes.fromhex("6480")) == -100
    assert FEETECH.encode(name, 100) == bytes.fromhex("6400")


def test_the_homing_offset_and_the_load_have_their_own_sign_bits() -> None:
    assert FEETECH.encode("homing_offset", -100) == (0x0800 | 100).to_bytes(2, "little")  # bit 11
    assert FEETECH.decode("homing_offset", (0x0800 | 100).to_bytes(2, "little")) == -100
    assert FEETECH.encode("present_load", -100) == (0x0400 | 100).to_bytes(2, "little")  # bit 10
    assert FEETECH.decode("present_load", (0x0400 | 100).to_bytes(2, "little")) == -100


def test_unsigned_sts_registers_stay_unsigned() -> None:
    assert FEETECH.register("model_number").sign_bit is None
    assert FEETECH.decode("model_number", bytes.fromhex("0983")) == 0x8309
    with pytest.raises(RobotError):
        FEETECH.encode("torque_enable", -1)


@pytest.mark.parametrize("name", sorted(STS_SIGN_BITS))
def test_out_of_range_magnitudes_are_refused_in_one_line(name: str) -> None:
    limit = (1 << STS_SIGN_BITS[name]) - 1
    for value in (limit + 1, -limit - 1):
        with pytest.raises(RobotError, match=f"register {name}") as info:
            FEETECH.encode(name, value)
        message = str(info.value)
        assert "\n" not in message and f"-{limit}..{limit}" in message and f"bit {STS_SIGN_BITS[name]}" in message
    assert FEETECH.decode(name, FEETECH.encode(name, -limit)) == -limit


@given(data=st.data())
def test_every_sts_signed_value_round_trips(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(STS_SIGN_BITS)))
    bit = STS_SIGN_BITS[name]
    value = data.draw(st.integers(-(1 << bit) + 1, (1 << bit) - 1))
    raw = FEETECH.encode(name, value)
    assert FEETECH.decode(name, raw) == value
    assert int.from_bytes(raw, "little") == encode_sign_magnitude(value, bit)
    assert decode_sign_magnitude(int.from_bytes(raw, "little"), bit) == value


def test_dynamixel_stays_twos_complement() -> None:
    codec = DynamixelCodec()
    assert codec.encode("present_position", -100) == (-100).to_bytes(4, "little", signed=True)
    assert codec.decode("present_position", bytes.fromhex("9cffffff")) == -100
    assert codec.encode("homing_offset", -100) == bytes.fromhex("9cffffff")
    assert all(r.sign_bit is None for r in codec.registers.values())


def test_the_bus_and_the_emulator_agree_on_negative_sts_values() -> None:
    bank = ServoBank(FeetechCodec(), [1, 2])
    bus = ServoBus(BusConfig(dry_run=True), [1, 2], transport=LoopbackTransport(bank))
    bank.set_value(1, "present_position", -100)
    assert bytes(bank.tables[1][56:58]) == bytes.fromhex("6480")  # stored the vendor's way
    assert bus.read(1, "present_position") == -100
    assert bus.sync_read("present_position") == {1: -100, 2: 2048}
    bus.write(2, "goal_speed", -100)
    assert bytes(bank.tables[2][46:48]) == bytes.fromhex("6480")
    bus.sync_write("goal_speed", {1: -5, 2: 7})
    assert bank.value(1, "goal_speed") == -5 and bank.value(2, "goal_speed") == 7

