"""Conformance with Feetech's own Python SDK (ftservo-python-sdk, module ``scservo_sdk``; a dev dependency).

Three directions: agentrt's requests are byte for byte the SDK's, for every instruction the driver sends
(PING, READ, WRITE, SYNC_READ, SYNC_WRITE); the SDK talking to agentrt's emulated bus gets the right values
(its STS layer's sign-magnitude decoding included); and status packets cross-decode both ways.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sims.real.bus import BusConfig, ServoBus
from sims.real.emulator import ServoBank
from sims.real.feetech import STS_SIGN_BITS, FeetechCodec

from .sdk_port import RecordingTransport, memory_port

scs = pytest.importorskip("scservo_sdk", reason="the Feetech SDK is a dev dependency: pip install ftservo-python-sdk")

IDS = [1, 2, 3, 4, 5, 6]


def _sides() -> tuple[ServoBus, RecordingTransport, object, object]:
    """(agentrt's bus, its recording transport, the SDK's packet handler, the SDK's port), each on its own bank."""
    transport = RecordingTransport(ServoBank(FeetechCodec(), IDS))
    bus = ServoBus(BusConfig(dry_run=True, protocol="feetech"), IDS, transport=transport)
    port = memory_port(scs.PortHandler, ServoBank(FeetechCodec(), IDS))
    return bus, transport, scs.sms_sts(port), port


def test_ping_read_and_write_requests_are_the_sdks_bytes() -> None:
    bus, ours, sdk, port = _sides()
    bus.ping(3)
    model, result, _ = sdk.ping(3)  # the SDK's ping is PING, then READ of the model number (address 3, 2 bytes)
    assert result == scs.COMM_SUCCESS and model == FeetechCodec.model_number
    assert ours.sent[-1] == port.sent[-2]
    assert bus.read(3, "model_number") == model
    assert ours.sent[-1] == port.sent[-1]
    bus.read(2, "present_position")
    sdk.read2ByteTxRx(2, scs.SMS_STS_PRESENT_POSITION_L)
    assert ours.sent[-1] == port.sent[-1]
    bus.write(4, "goal_position", 2100)
    sdk.write2ByteTxRx(4, scs.SMS_STS_GOAL_POSITION_L, 2100)
    assert ours.sent[-1] == port.sent[-1]
    bus.write(5, "torque_enable", 1)
    sdk.write1ByteTxRx(5, scs.SMS_STS_TORQUE_ENABLE, 1)
    assert ours.sent[-1] == port.sent[-1]
    bus.write(6, "goal_speed", -100)  # the SDK's WriteSpec encodes the speed with scs_toscs(v, 15)
    sdk.write2ByteTxRx(6, scs.SMS_STS_GOAL_SPEED_L, sdk.scs_toscs(-100, 15))
    assert ours.sent[-1] == port.sent[-1]


def test_sync_read_and_sync_write_requests_are_the_sdks_bytes() -> None:
    bus, ours, sdk, port = _sides()
    assert set(bus.sync_read("present_position")) == set(IDS)
    group = scs.GroupSyncRead(sdk, scs.SMS_STS_PRESENT_POSITION_L, 2)
    for servo_id in IDS:
        group.addParam(servo_id)
    assert group.txRxPacket() == scs.COMM_SUCCESS
    assert ours.sent[-1] == port.sent[-1]
    goals = {servo_id: 1900 + 10 * servo_id for servo_id in IDS}
    bus.sync_write("goal_position", goals)
    writer = scs.GroupSyncWrite(sdk, scs.SMS_STS_GOAL_POSITION_L, 2)
    for servo_id, goal in goals.items():
        writer.addParam(servo_id, [sdk.scs_lobyte(goal), sdk.scs_hibyte(goal)])
    assert writer.txPacket() == scs.COMM_SUCCESS
    assert ours.sent[-1] == port.sent[-1]


def test_the_sdk_understands_the_emulated_bus() -> None:
    bank = ServoBank(FeetechCodec(), IDS)
    port = memory_port(scs.PortHandler, bank)
    sdk = scs.sms_sts(port)
    bank.set_value(1, "present_position", -100)  # bit 15 set: 64 80
    bank.set_value(2, "present_speed", -250)
    position, result, error = sdk.ReadPos(1)
    assert (position, result, error) == (-100, scs.COMM_SUCCESS, 0)
    speed, result, _ = sdk.ReadSpeed(2)
    assert (speed, result) == (-250, scs.COMM_SUCCESS)
    assert sdk.write2ByteTxRx(3, scs.SMS_STS_GOAL_POSITION_L, 3000) == (scs.COMM_SUCCESS, 0)
    assert bank.value(3, "goal_position") == 3000
    assert sdk.WriteSpec(4, -300, 10) == (scs.COMM_SUCCESS, 0)  # acceleration, position 0, time 0, speed in one WRITE
    assert bank.value(4, "goal_speed") == -300 and bank.value(4, "acceleration") == 10
    writer = scs.GroupSyncWrite(sdk, scs.SMS_STS_TORQUE_ENABLE, 1)
    for servo_id in IDS:
        writer.addParam(servo_id, [1])
    writer.txPacket()
    assert [bank.value(i, "torque_enable") for i in IDS] == [1] * 6
    reader = scs.GroupSyncRead(sdk, scs.SMS_STS_PRESENT_POSITION_L, 4)  # position and speed in one read
    for servo_id in IDS:
        reader.addParam(servo_id)
    assert reader.txRxPacket() == scs.COMM_SUCCESS
    for servo_id in IDS:
        available, error = reader.isAvailable(servo_id, scs.SMS_STS_PRESENT_POSITION_L, 4)
        assert available and error == 0
        raw_position = reader.getData(servo_id, scs.SMS_STS_PRESENT_POSITION_L, 2)
        raw_speed = reader.getData(servo_id, scs.SMS_STS_PRESENT_SPEED_L, 2)
        assert sdk.scs_tohost(raw_position, 15) == bank.value(servo_id, "present_position")
        assert sdk.scs_tohost(raw_speed, 15) == bank.value(servo_id, "present_speed")


def test_error_bits_reach_the_sdk() -> None:
    bank = ServoBank(FeetechCodec(), IDS)
    bank.faults.error_bits[2] = 0x20  # overload
    sdk = scs.sms_sts(memory_port(scs.PortHandler, bank))
    _, result, error = sdk.read1ByteTxRx(2, scs.SMS_STS_PRESENT_TEMPERATURE)
    assert result == scs.COMM_SUCCESS and error == 0x20
    assert "Overload" in sdk.getRxPacketError(error)


@given(value=st.integers(-32767, 32767))
def test_sign_magnitude_agrees_with_the_sdks_scs_tohost_and_scs_toscs(value: int) -> None:
    codec = FeetechCodec()
    sdk = scs.sms_sts(memory_port(scs.PortHandler, None))
    for name, bit in STS_SIGN_BITS.items():
        if bit != 15:
            continue
        raw = int.from_bytes(codec.encode(name, value), "little")
        assert raw == sdk.scs_toscs(value, 15)
        assert sdk.scs_tohost(raw, 15) == value == codec.decode(name, raw.to_bytes(2, "little"))


@given(servo_id=st.integers(0, 253), error=st.integers(0, 0x7F), params=st.binary(max_size=32))
def test_status_packets_cross_decode(servo_id: int, error: int, params: bytes) -> None:
    """agentrt's status packets read by the SDK's rxPacket, and the SDK's packet builder read by agentrt.

    The SDK treats an error byte above 0x7F as noise (the STS series never sets bit 7), hence the range.
    """
    codec = FeetechCodec()
    port = memory_port(scs.PortHandler, None)
    sdk = scs.sms_sts(port)
    port.feed(codec.encode_status(servo_id, error, params))
    port.setPacketTimeout(len(params) + 6)
    packet, result = sdk.rxPacket()
    assert result == scs.COMM_SUCCESS
    assert (packet[2], packet[4], bytes(packet[5:-1])) == (servo_id, error, params)
    # The SDK's txPacket frames and checksums any body; a status packet has the error where an instruction
    # has its code. It goes out through the port, where agentrt parses it.
    built = [0, 0, servo_id, len(params) + 2, error, *params, 0]
    assert sdk.txPacket(built) == scs.COMM_SUCCESS
    sdk.portHandler.is_using = False
    status, _ = codec.parse_status(bytearray(port.sent[-1]))
    assert status is not None and (status.servo_id, status.error, status.params) == (servo_id, error, params)
