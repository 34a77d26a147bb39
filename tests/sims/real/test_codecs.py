"""The packet codecs against the vendors' published formats: checksums, CRC, stuffing, status packets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sims.real.dynamixel import DynamixelCodec, crc16, stuff, unstuff
from sims.real.feetech import FeetechCodec
from sims.real.packets import PING, READ, SYNC_READ, SYNC_WRITE, WRITE, PacketError


def test_feetech_ping_matches_the_published_example() -> None:
    # The vendor's PING of servo 1: FF FF 01 02 01 FB (checksum = ~(01 + 02 + 01)).
    assert FeetechCodec().encode_instruction(1, PING, b"") == bytes.fromhex("ffff010201fb")


def test_feetech_read_and_status_round_trip() -> None:
    codec = FeetechCodec()
    reg = codec.register("present_position")
    packet = codec.encode_instruction(1, READ, codec.read_params(reg))
    assert packet == bytes.fromhex("ffff0104023802be")  # READ 2 bytes at 0x38 (56)
    status = codec.encode_status(1, 0, (2048).to_bytes(2, "little"))
    parsed, _ = codec.parse_status(bytearray(status))
    assert parsed is not None and parsed.servo_id == 1 and parsed.error == 0
    assert codec.decode_value(reg, parsed.params) == 2048


def test_dynamixel_ping_matches_the_published_example() -> None:
    # Robotis e-manual, Protocol 2.0 PING of ID 1: FF FF FD 00 01 03 00 01 19 4E.
    assert DynamixelCodec().encode_instruction(1, PING, b"") == bytes.fromhex("fffffd0001030001194e")
    assert crc16(bytes.fromhex("fffffd00010300 01".replace(" ", ""))) == 0x4E19


def test_dynamixel_status_with_model_number() -> None:
    codec = DynamixelCodec()
    status = codec.encode_status(1, 0, codec.ping_reply(codec.model_number))
    parsed, _ = codec.parse_status(bytearray(status))
    assert parsed is not None and parsed.servo_id == 1
    assert int.from_bytes(parsed.params[:2], "little") == codec.model_number


def test_dynamixel_byte_stuffing() -> None:
    assert stuff(bytes.fromhex("01fffffd02")) == bytes.fromhex("01fffffdfd02")
    assert unstuff(bytes.fromhex("01fffffdfd02")) == bytes.fromhex("01fffffd02")
    codec = DynamixelCodec()
    # A WRITE whose data contains FF FF FD: stuffed on the wire, intact after parsing.
    packet = codec.encode_instruction(3, WRITE, bytes.fromhex("7400fffffd00"))
    assert b"\xff\xff\xfd\xfd" in packet[7:]
    parsed, _ = codec.parse_instruction(bytearray(packet))
    assert parsed is not None and parsed.params == bytes.fromhex("7400fffffd00")


@pytest.mark.parametrize("codec", [FeetechCodec(), DynamixelCodec()], ids=["feetech", "dynamixel"])
def test_a_corrupt_checksum_raises_and_is_consumed(codec: FeetechCodec | DynamixelCodec) -> None:
    good = codec.encode_status(2, 0, b"\x10\x20")
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    buffer = bytearray(bad + good)
    with pytest.raises(PacketError, match="servo 2") as info:
        codec.parse_status(buffer)
    assert info.value.servo_id == 2
    parsed, _ = codec.parse_status(buffer)  # the next packet is still read
    assert parsed is not None and parsed.params == b"\x10\x20"


@pytest.mark.parametrize("codec", [FeetechCodec(), DynamixelCodec()], ids=["feetech", "dynamixel"])
def test_noise_before_a_packet_is_skipped_and_partial_packets_wait(codec: FeetechCodec | DynamixelCodec) -> None:
    packet = codec.encode_status(4, 0x20, b"\x01")
    buffer = bytearray(b"\x00\x13\xff" + packet[:5])
    status, skip = codec.parse_status(buffer)
    assert status is None
    del buffer[:skip]
    buffer += packet[5:]
    status, _ = codec.parse_status(buffer)
    assert status is not None and status.servo_id == 4 and status.error == 0x20


@pytest.mark.parametrize("codec", [FeetechCodec(), DynamixelCodec()], ids=["feetech", "dynamixel"])
def test_sync_instructions_split_back(codec: FeetechCodec | DynamixelCodec) -> None:
    reg = codec.register("goal_position")
    values = {i: codec.encode_value(reg, 1000 + i) for i in (1, 2, 3)}
    parsed, _ = codec.parse_instruction(bytearray(codec.encode_instruction(0xFE, SYNC_WRITE, codec.sync_write_params(reg, values))))
    assert parsed is not None and parsed.instruction == SYNC_WRITE
    assert codec.split_sync_write(parsed.params) == (reg.address, values)
    read = codec.sync_read_params(codec.register("present_position"), [1, 2, 3])
    assert codec.split_sync_read(read) == (codec.register("present_position").address, codec.register("present_position").size, [1, 2, 3])
    parsed, _ = codec.parse_instruction(bytearray(codec.encode_instruction(0xFE, SYNC_READ, read)))
    assert parsed is not None and parsed.instruction == SYNC_READ


def test_error_bits_in_words() -> None:
    assert FeetechCodec().describe_error(0x24) == "overheat, overload"
    assert DynamixelCodec().describe_error(0x03) == "CRC error"
    assert "hardware alert" in DynamixelCodec().describe_error(0x80)


@given(servo_id=st.integers(0, 253), error=st.integers(0, 255), params=st.binary(max_size=64))
def test_any_status_round_trips(servo_id: int, error: int, params: bytes) -> None:
    for codec in (FeetechCodec(), DynamixelCodec()):
        parsed, _ = codec.parse_status(bytearray(codec.encode_status(servo_id, error, params)))
        assert parsed is not None and (parsed.servo_id, parsed.error, parsed.params) == (servo_id, error, params)
