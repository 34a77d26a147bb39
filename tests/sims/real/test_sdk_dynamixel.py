"""Conformance with Robotis' own Python SDK (dynamixel-sdk, module ``dynamixel_sdk``; a dev dependency).

Three directions: agentrt's Protocol 2.0 requests are byte for byte the SDK's, for every instruction the
driver sends (PING, READ, WRITE, SYNC_READ, SYNC_WRITE); the SDK talking to agentrt's emulated bus gets the
right values; and status packets cross-decode both ways.

Byte stuffing is checked against the Protocol 2.0 document, not the SDK: dynamixel-sdk 4.1's ``txPacket``
calls ``addStuffing`` and discards the stuffed packet it returns (a packet that needs stuffing goes out
unstuffed), and its ``removeStuffing`` drops a byte on some replies of six or more data bytes. The packets
with stuffing below are written by hand from the document; only their CRC comes from the SDK's
``updateCRC`` (a CRC the SDK computes correctly).
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sims.real.bus import BusConfig, ServoBus
from sims.real.dynamixel import DynamixelCodec
from sims.real.emulator import ServoBank
from sims.real.packets import READ, WRITE

from .sdk_port import RecordingTransport, memory_port

dxl = pytest.importorskip("dynamixel_sdk", reason="the Dynamixel SDK is a dev dependency: pip install dynamixel-sdk")

IDS = [1, 2, 3, 4, 5, 6]
PRESENT_POSITION, GOAL_POSITION, TORQUE_ENABLE = 132, 116, 64


def _bytes4(value: int) -> list[int]:
    return [dxl.DXL_LOBYTE(dxl.DXL_LOWORD(value)), dxl.DXL_HIBYTE(dxl.DXL_LOWORD(value)),
            dxl.DXL_LOBYTE(dxl.DXL_HIWORD(value)), dxl.DXL_HIBYTE(dxl.DXL_HIWORD(value))]


def _sides() -> tuple[ServoBus, RecordingTransport, object, object]:
    """(agentrt's bus, its recording transport, the SDK's packet handler, the SDK's port), each on its own bank."""
    transport = RecordingTransport(ServoBank(DynamixelCodec(), IDS))
    bus = ServoBus(BusConfig(dry_run=True, protocol="dynamixel"), IDS, transport=transport)
    return bus, transport, dxl.PacketHandler(2.0), memory_port(dxl.PortHandler, ServoBank(DynamixelCodec(), IDS))


def test_ping_read_and_write_requests_are_the_sdks_bytes() -> None:
    bus, ours, sdk, port = _sides()
    reply = bus.ping(3)
    model, result, error = sdk.ping(port, 3)
    assert (result, error) == (dxl.COMM_SUCCESS, 0)
    assert model == int.from_bytes(reply[:2], "little") == DynamixelCodec.model_number
    assert ours.sent[-1] == port.sent[-1]
    bus.read(2, "present_position")
    sdk.read4ByteTxRx(port, 2, PRESENT_POSITION)
    assert ours.sent[-1] == port.sent[-1]
    bus.write(4, "goal_position", -100)  # two's complement
    sdk.write4ByteTxRx(port, 4, GOAL_POSITION, -100)
    assert ours.sent[-1] == port.sent[-1]
    bus.write(5, "torque_enable", 1)
    sdk.write1ByteTxRx(port, 5, TORQUE_ENABLE, 1)
    assert ours.sent[-1] == port.sent[-1]


def test_sync_read_and_sync_write_requests_are_the_sdks_bytes() -> None:
    bus, ours, sdk, port = _sides()
    bus.sync_read("present_position")
    group = dxl.GroupSyncRead(port, sdk, PRESENT_POSITION, 4)
    for servo_id in IDS:
        group.addParam(servo_id)
    assert group.txRxPacket() == dxl.COMM_SUCCESS
    assert ours.sent[-1] == port.sent[-1]
    goals = {servo_id: 1900 + 10 * servo_id for servo_id in IDS}
    bus.sync_write("goal_position", goals)
    writer = dxl.GroupSyncWrite(port, sdk, GOAL_POSITION, 4)
    for servo_id, goal in goals.items():
        writer.addParam(servo_id, _bytes4(goal))
    assert writer.txPacket() == dxl.COMM_SUCCESS
    assert ours.sent[-1] == port.sent[-1]


def test_the_sdk_understands_the_emulated_bus() -> None:
    bank = ServoBank(DynamixelCodec(), IDS)
    port, sdk = memory_port(dxl.PortHandler, bank), dxl.PacketHandler(2.0)
    bank.set_value(1, "present_position", 3000)
    position, result, error = sdk.read4ByteTxRx(port, 1, PRESENT_POSITION)
    assert (position, result, error) == (3000, dxl.COMM_SUCCESS, 0)
    assert sdk.write4ByteTxRx(port, 2, GOAL_POSITION, 1234) == (dxl.COMM_SUCCESS, 0)
    assert bank.value(2, "goal_position") == 1234
    writer = dxl.GroupSyncWrite(port, sdk, TORQUE_ENABLE, 1)
    for servo_id in IDS:
        writer.addParam(servo_id, [1])
    writer.txPacket()
    assert [bank.value(i, "torque_enable") for i in IDS] == [1] * 6
    bank.set_value(3, "present_position", -100)
    reader = dxl.GroupSyncRead(port, sdk, PRESENT_POSITION, 4)
    for servo_id in IDS:
        reader.addParam(servo_id)
    assert reader.txRxPacket() == dxl.COMM_SUCCESS
    for servo_id in IDS:
        assert reader.isAvailable(servo_id, PRESENT_POSITION, 4)
        raw = reader.getData(servo_id, PRESENT_POSITION, 4)
        assert int.from_bytes(raw.to_bytes(4, "little"), "little", signed=True) == bank.value(servo_id, "present_position")


def test_error_bytes_reach_the_sdk() -> None:
    bank = ServoBank(DynamixelCodec(), IDS)
    bank.faults.error_bits[2] = 0x80  # hardware alert
    port, sdk = memory_port(dxl.PortHandler, bank), dxl.PacketHandler(2.0)
    _, result, error = sdk.read1ByteTxRx(port, 2, TORQUE_ENABLE)
    assert result == dxl.COMM_SUCCESS and error == 0x80


@given(servo_id=st.integers(0, 252), error=st.integers(0, 255), params=st.binary(max_size=32))
def test_status_packets_cross_decode(servo_id: int, error: int, params: bytes) -> None:
    """agentrt's status packets read by the SDK's rxPacket, and the SDK's packet builder read by agentrt.

    Payloads holding FF FF FD are left out here: they need byte stuffing, which the SDK gets wrong (see the
    module docstring); test_byte_stuffing_follows_the_protocol_document covers them.
    """
    assume(b"\xff\xff\xfd" not in bytes([0x55, error]) + params)
    codec = DynamixelCodec()
    port, sdk = memory_port(dxl.PortHandler, None), dxl.PacketHandler(2.0)
    port.feed(codec.encode_status(servo_id, error, params))
    port.setPacketTimeout(len(params) + 11)
    packet, result = sdk.rxPacket(port, False)
    assert result == dxl.COMM_SUCCESS
    assert (packet[4], packet[8], bytes(packet[9:-2])) == (servo_id, error, params)
    # The SDK's txPacket frames and CRCs any body: 0x55 where an instruction has its code, then the error.
    built = [0, 0, 0, 0, servo_id, *(len(params) + 4).to_bytes(2, "little"), 0x55, error, *params, 0, 0]
    assert sdk.txPacket(port, built) == dxl.COMM_SUCCESS
    port.is_using = False
    status, _ = codec.parse_status(bytearray(port.sent[-1]))
    assert status is not None and (status.servo_id, status.error, status.params) == (servo_id, error, params)


def _crc(packet: bytes) -> bytes:
    return dxl.PacketHandler(2.0).updateCRC(0, list(packet), len(packet)).to_bytes(2, "little")


def test_byte_stuffing_follows_the_protocol_document() -> None:
    """Protocol 2.0, "Byte Stuffing": FD is added after every FF FF FD from the instruction field on, LENGTH
    counts the stuffed bytes, and the CRC is computed over the stuffed packet. Expected bytes by hand."""
    codec = DynamixelCodec()
    # WRITE to servo 1, address 116, data FF FF FD 00: one FD inserted; length = 1 + 2 + 4 + 1 + 2 = 10.
    head = bytes.fromhex("fffffd00" "01" "0a00" "03" "7400" "fffffdfd00")
    expected = head + _crc(head)
    assert codec.encode_instruction(1, WRITE, bytes.fromhex("7400fffffd00")) == expected
    parsed, _ = codec.parse_instruction(bytearray(expected))
    assert parsed is not None and parsed.params == bytes.fromhex("7400fffffd00")
    # A 6-byte read reply whose data holds FF FF FD twice: status 55, error 00, data FF FF FD FF FF FD.
    head = bytes.fromhex("fffffd00" "02" "0c00" "5500" "fffffdfd" "fffffdfd")
    expected = head + _crc(head)
    assert codec.encode_status(2, 0, bytes.fromhex("fffffdfffffd")) == expected
    status, _ = codec.parse_status(bytearray(expected))
    assert status is not None and status.params == bytes.fromhex("fffffdfffffd")
    # The emulator answers a READ of such a value the same way, and the bus reads it back intact.
    bank = ServoBank(codec, [2])
    bank.tables[2][PRESENT_POSITION : PRESENT_POSITION + 4] = bytes.fromhex("00fffffd")
    reply = bank.handle(codec.encode_instruction(2, READ, codec.read_params(codec.register("present_position"))))
    head = bytes.fromhex("fffffd00" "02" "0900" "5500" "00fffffdfd")
    assert reply == head + _crc(head)
    bus = ServoBus(BusConfig(dry_run=True, protocol="dynamixel"), [2], transport=RecordingTransport(bank))
    assert bus.read(2, "present_position") == int.from_bytes(bytes.fromhex("00fffffd"), "little", signed=True)
