"""Dynamixel Protocol 2.0 (X series: XL330 / XL430 in Koch-style arms): packet format and control table.

Packets, as Robotis publishes them::

    instruction  FF FF FD 00  ID  LEN_L LEN_H  INSTR        PARAM...  CRC_L CRC_H
    status       FF FF FD 00  ID  LEN_L LEN_H  0x55  ERROR  PARAM...  CRC_L CRC_H

``LEN`` = bytes after the length field (instruction, error, stuffed parameters,
CRC). The CRC is CRC-16 (polynomial 0x8005, initial value 0, not reflected)
over every byte before it, header included. Byte stuffing: wherever
``FF FF FD`` occurs from the instruction on, an extra ``FD`` is inserted so no
header appears inside a packet; the receiver removes it.

Parameters are little-endian: READ ``[addr(2), length(2)]``, WRITE
``[addr(2), data...]``, SYNC_READ (0x82) ``[addr(2), length(2), id1, id2, ...]``
answered by one status per servo in order, SYNC_WRITE (0x83) ``[addr(2),
length(2), id1, data1..., ...]`` unanswered. PING is answered with the model
number (2) and firmware version (1).

Error byte: bit 7 = hardware alert (read register 70 for its cause), bits 0-6 an
error number: 1 result fail, 2 instruction error, 3 CRC error, 4 data range,
5 data length, 6 data limit, 7 access.
"""

from __future__ import annotations

from sims.real.packets import Codec, Instruction, PacketError, Register, Status

__all__ = ["DynamixelCodec", "X_REGISTERS", "crc16", "stuff", "unstuff"]

X_REGISTERS = {
    r.name: r
    for r in (
        Register("model_number", 0, 2),
        Register("id", 7, 1),
        Register("baud_rate", 8, 1),
        Register("drive_mode", 10, 1),  # bit 0: reverse direction (LeRobot reads it into a calibration)
        Register("operating_mode", 11, 1),
        Register("homing_offset", 20, 4, signed=True),
        Register("max_position_limit", 48, 4),
        Register("min_position_limit", 52, 4),
        Register("torque_enable", 64, 1),
        Register("hardware_error_status", 70, 1),
        Register("profile_velocity", 112, 4),
        Register("goal_position", 116, 4, signed=True),
        Register("present_velocity", 128, 4, signed=True),
        Register("present_position", 132, 4, signed=True),
        Register("present_temperature", 146, 1),
    )
}

_HEADER = b"\xff\xff\xfd\x00"
_STATUS = 0x55
_MAX_LENGTH = 1024  # longer than any packet we send or expect: a corrupt length field
_ERRORS = {1: "result fail", 2: "instruction error", 3: "CRC error", 4: "data range error",
           5: "data length error", 6: "data limit error", 7: "access error"}


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _crc_table()


def crc16(data: bytes | bytearray, crc: int = 0) -> int:
    """CRC-16/BUYPASS (poly 0x8005, init 0, no reflection), as in the Robotis SDK."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def stuff(data: bytes) -> bytes:
    """Insert 0xFD after every FF FF FD."""
    out = bytearray()
    for byte in data:
        out.append(byte)
        if byte == 0xFD and out[-3:] == b"\xff\xff\xfd":
            out.append(0xFD)
    return bytes(out)


def unstuff(data: bytes) -> bytes:
    """Remove the 0xFD that follows every FF FF FD."""
    out = bytearray()
    i = 0
    while i < len(data):
        out.append(data[i])
        if data[i] == 0xFD and out[-3:] == b"\xff\xff\xfd" and i + 1 < len(data) and data[i + 1] == 0xFD:
            i += 1  # skip the stuffing byte
        i += 1
    return bytes(out)


class DynamixelCodec(Codec):
    """Dynamixel Protocol 2.0, X-series control table."""

    name = "dynamixel"
    steps_per_rev = 4096
    registers = X_REGISTERS
    model_number = 1200  # XL330-M288
    model_names = {1200: "XL330-M288", 1190: "XL330-M077", 1060: "XL430-W250", 1020: "XM430-W350", 1030: "XM430-W210"}
    position_mode = 3
    # Extended and current-based position control keep the goal_position interface (LeRobot sets them on a Koch).
    position_modes = frozenset({3, 4, 5})
    mode_names = {0: "current", 1: "velocity", 3: "position", 4: "extended position",
                  5: "current-based position", 16: "PWM"}
    firmware = 46

    def _encode(self, servo_id: int, payload: bytes) -> bytes:
        if not 0 <= servo_id <= 0xFE:
            raise PacketError(f"dynamixel: servo id must be 0..254, got {servo_id}")
        body = stuff(payload)
        packet = _HEADER + bytes([servo_id]) + (len(body) + 2).to_bytes(2, "little") + body
        return packet + crc16(packet).to_bytes(2, "little")

    def encode_instruction(self, servo_id: int, instruction: int, params: bytes) -> bytes:
        return self._encode(servo_id, bytes([instruction]) + params)

    def encode_status(self, servo_id: int, error: int, params: bytes) -> bytes:
        return self._encode(servo_id, bytes([_STATUS, error]) + params)

    def _parse(self, buffer: bytearray) -> tuple[tuple[int, bytes] | None, int]:
        start = buffer.find(_HEADER)
        if start < 0:
            keep = next((k for k in (3, 2, 1) if buffer.endswith(_HEADER[:k])), 0)
            return None, len(buffer) - keep
        if len(buffer) < start + 7:
            return None, start
        servo_id = buffer[start + 4]
        length = int.from_bytes(buffer[start + 5 : start + 7], "little")
        if not 3 <= length <= _MAX_LENGTH:
            del buffer[: start + 4]
            raise PacketError(f"dynamixel: impossible length {length} in a packet from servo {servo_id}", servo_id)
        end = start + 7 + length
        if len(buffer) < end:
            return None, start
        expected = crc16(buffer[start : end - 2])
        got = int.from_bytes(buffer[end - 2 : end], "little")
        payload = unstuff(bytes(buffer[start + 7 : end - 2]))
        del buffer[:end]
        if expected != got:
            raise PacketError(
                f"dynamixel: bad CRC from servo {servo_id} (got 0x{got:04x}, expected 0x{expected:04x})", servo_id
            )
        return (servo_id, payload), 0

    def parse_instruction(self, buffer: bytearray) -> tuple[Instruction | None, int]:
        parsed, skip = self._parse(buffer)
        if parsed is None:
            return None, skip
        servo_id, payload = parsed
        return Instruction(servo_id, payload[0], payload[1:]), 0

    def parse_status(self, buffer: bytearray) -> tuple[Status | None, int]:
        parsed, skip = self._parse(buffer)
        if parsed is None:
            return None, skip
        servo_id, payload = parsed
        if len(payload) < 2 or payload[0] != _STATUS:
            raise PacketError(
                f"dynamixel: expected a status packet (0x55) from servo {servo_id}, got instruction 0x{payload[0]:02x}",
                servo_id,
            )
        return Status(servo_id, payload[1], payload[2:]), 0

    def describe_error(self, error: int) -> str:
        names = []
        number = error & 0x7F
        if number:
            names.append(_ERRORS.get(number, f"error {number}"))
        if error & 0x80:
            names.append("hardware alert (read hardware_error_status, register 70)")
        return ", ".join(names) or "no error"

    # -- parameters ---------------------------------------------------------------------------
    def read_params(self, register: Register) -> bytes:
        return register.address.to_bytes(2, "little") + register.size.to_bytes(2, "little")

    def write_params(self, register: Register, data: bytes) -> bytes:
        return register.address.to_bytes(2, "little") + data

    def split_read(self, params: bytes) -> tuple[int, int]:
        if len(params) != 4:
            raise PacketError(f"dynamixel READ: expected 4 parameter bytes, got {len(params)}")
        return int.from_bytes(params[:2], "little"), int.from_bytes(params[2:4], "little")

    def split_write(self, params: bytes) -> tuple[int, bytes]:
        if len(params) < 3:
            raise PacketError(f"dynamixel WRITE: expected an address and data, got {len(params)} byte(s)")
        return int.from_bytes(params[:2], "little"), bytes(params[2:])

    def split_sync_read(self, params: bytes) -> tuple[int, int, list[int]]:
        if len(params) < 5:
            raise PacketError(f"dynamixel SYNC_READ: expected address, length and ids, got {len(params)} byte(s)")
        address, size = self.split_read(params[:4])
        return address, size, list(params[4:])

    def split_sync_write(self, params: bytes) -> tuple[int, dict[int, bytes]]:
        if len(params) < 4:
            raise PacketError(f"dynamixel SYNC_WRITE: expected address and length, got {len(params)} byte(s)")
        address, size = self.split_read(params[:4])
        records = params[4:]
        if size < 1 or len(records) % (size + 1):
            raise PacketError(f"dynamixel SYNC_WRITE: {len(records)} bytes do not split into (id, {size} bytes) records")
        return address, {records[i]: bytes(records[i + 1 : i + 1 + size]) for i in range(0, len(records), size + 1)}

    def ping_reply(self, model_number: int) -> bytes:
        return model_number.to_bytes(2, "little") + bytes([self.firmware])

    def model_from_ping(self, params: bytes) -> int | None:
        if len(params) < 2:
            raise PacketError(f"dynamixel: a PING status carries model and firmware (3 bytes), got {len(params)}")
        return int.from_bytes(params[:2], "little")
