"""Feetech STS/SCS bus servos (STS3215 in the SO-100 / SO-101): packet format and control table.

Packets, as the vendor publishes them (half-duplex TTL, 1 Mbaud on the SO-100)::

    instruction  FF FF  ID  LEN  INSTR  PARAM...  CHK
    status       FF FF  ID  LEN  ERROR  PARAM...  CHK

``LEN`` = number of parameters + 2; ``CHK`` = ~(ID + LEN + INSTR/ERROR + sum(PARAM)) & 0xFF.
READ ``[addr, length]``; WRITE ``[addr, data...]``; SYNC_READ (0x82, to the
broadcast id 0xFE) ``[addr, length, id1, id2, ...]``, answered by one status
packet per servo, in order; SYNC_WRITE (0x83) ``[addr, length, id1, data1...,
id2, data2..., ...]``, unanswered. Multi-byte values of the STS series are
little-endian (the older SCS series is big-endian: not supported here).

Error byte of the STS series: bit 0 input voltage, 1 magnetic encoder (angle
sensor), 2 overheat, 3 overcurrent, 5 overload.
"""

from __future__ import annotations

from sims.real.packets import Codec, Instruction, PacketError, Register, Status

__all__ = ["FeetechCodec", "STS_REGISTERS", "STS_SIGN_BITS", "feetech_checksum"]

# Sign-magnitude registers and their sign bit (the bits below it hold the magnitude: -100 at bit 15 is 0x8064,
# bytes 64 80). From Feetech's SMS/STS SDK (sms_sts.py: ReadPos / ReadSpeed decode with scs_tohost(x, 15),
# WriteSpec encodes the speed with scs_toscs(v, 15); the C++ SDK's WritePosEx sets bit 15 for a negative
# position and ReadLoad reads bit 10) and LeRobot's STS_SMS_SERIES_ENCODINGS_TABLE (Homing_Offset 11).
STS_SIGN_BITS = {
    "homing_offset": 11,
    "goal_position": 15,
    "goal_speed": 15,
    "present_position": 15,
    "present_speed": 15,
    "present_load": 10,
}

_STS_TABLE = (
    Register("model_number", 3, 2),
    Register("id", 5, 1),
    Register("baud_rate", 6, 1),
    Register("min_position_limit", 9, 2),
    Register("max_position_limit", 11, 2),
    Register("homing_offset", 31, 2),
    Register("operating_mode", 33, 1),
    Register("torque_enable", 40, 1),
    Register("acceleration", 41, 1),
    Register("goal_position", 42, 2),
    Register("goal_speed", 46, 2),
    Register("lock", 55, 1),
    Register("present_position", 56, 2),
    Register("present_speed", 58, 2),
    Register("present_load", 60, 2),
    Register("present_voltage", 62, 1),
    Register("present_temperature", 63, 1),
)
STS_REGISTERS = {r.name: Register(r.name, r.address, r.size, sign_bit=STS_SIGN_BITS.get(r.name)) for r in _STS_TABLE}

_ERROR_BITS = {0: "input voltage", 1: "angle sensor", 2: "overheat", 3: "overcurrent", 5: "overload"}
_HEADER = b"\xff\xff"


def feetech_checksum(body: bytes) -> int:
    """~(sum of ID, LEN, INSTR/ERROR and parameters) & 0xFF."""
    return ~sum(body) & 0xFF


class FeetechCodec(Codec):
    """Feetech STS (SMS/STS protocol, little-endian)."""

    name = "feetech"
    steps_per_rev = 4096
    registers = STS_REGISTERS
    model_number = 777  # STS3215
    model_names = {777: "STS3215", 2825: "STS3250", 1284: "SCS0009", 11272: "SM8512BL"}
    position_mode = 0
    position_modes = frozenset({0})
    mode_names = {0: "position", 1: "constant speed (wheel)", 2: "PWM", 3: "step"}
    lock_register = "lock"  # 1: EEPROM writes (operating_mode at 33) are refused / not kept

    def _encode(self, servo_id: int, code: int, params: bytes) -> bytes:
        if not 0 <= servo_id <= 0xFE:
            raise PacketError(f"feetech: servo id must be 0..254, got {servo_id}")
        if len(params) > 250:
            raise PacketError(f"feetech: at most 250 parameter bytes fit a packet, got {len(params)}")
        body = bytes([servo_id, len(params) + 2, code]) + params
        return _HEADER + body + bytes([feetech_checksum(body)])

    def encode_instruction(self, servo_id: int, instruction: int, params: bytes) -> bytes:
        return self._encode(servo_id, instruction, params)

    def encode_status(self, servo_id: int, error: int, params: bytes) -> bytes:
        return self._encode(servo_id, error, params)

    def _parse(self, buffer: bytearray) -> tuple[tuple[int, int, bytes] | None, int]:
        start = buffer.find(_HEADER)
        if start < 0:
            # Keep a trailing 0xFF: it may be the first byte of the next header.
            return None, len(buffer) - (1 if buffer.endswith(b"\xff") else 0)
        # FF FF FF ...: the first FF is noise (an id is never 0xFF).
        while start + 2 < len(buffer) and buffer[start + 2] == 0xFF:
            start += 1
        if len(buffer) < start + 4:
            return None, start
        servo_id, length = buffer[start + 2], buffer[start + 3]
        if length < 2:
            raise PacketError(f"feetech: impossible length {length} in a packet from servo {servo_id}", servo_id)
        end = start + 4 + length
        if len(buffer) < end:
            return None, start
        body, got = bytes(buffer[start + 2 : end - 1]), buffer[end - 1]
        if feetech_checksum(body) != got:
            del buffer[:end]
            raise PacketError(
                f"feetech: bad checksum from servo {servo_id} (got 0x{got:02x}, expected 0x{feetech_checksum(body):02x})",
                servo_id,
            )
        del buffer[:end]
        return (servo_id, body[2], body[3:]), 0

    def parse_instruction(self, buffer: bytearray) -> tuple[Instruction | None, int]:
        parsed, skip = self._parse(buffer)
        return (Instruction(*parsed) if parsed else None), skip

    def parse_status(self, buffer: bytearray) -> tuple[Status | None, int]:
        parsed, skip = self._parse(buffer)
        return (Status(*parsed) if parsed else None), skip

    def describe_error(self, error: int) -> str:
        names = [text for bit, text in _ERROR_BITS.items() if error & (1 << bit)]
        unknown = error & ~sum(1 << bit for bit in _ERROR_BITS)
        if unknown:
            names.append(f"unknown bits 0x{unknown:02x}")
        return ", ".join(names) or "no error"

    # -- parameters ---------------------------------------------------------------------------
    def read_params(self, register: Register) -> bytes:
        return bytes([register.address, register.size])

    def write_params(self, register: Register, data: bytes) -> bytes:
        return bytes([register.address]) + data

    def split_read(self, params: bytes) -> tuple[int, int]:
        if len(params) != 2:
            raise PacketError(f"feetech READ: expected 2 parameter bytes, got {len(params)}")
        return params[0], params[1]

    def split_write(self, params: bytes) -> tuple[int, bytes]:
        if len(params) < 2:
            raise PacketError(f"feetech WRITE: expected an address and data, got {len(params)} byte(s)")
        return params[0], bytes(params[1:])

    def split_sync_read(self, params: bytes) -> tuple[int, int, list[int]]:
        if len(params) < 3:
            raise PacketError(f"feetech SYNC_READ: expected address, length and ids, got {len(params)} byte(s)")
        return params[0], params[1], list(params[2:])

    def split_sync_write(self, params: bytes) -> tuple[int, dict[int, bytes]]:
        if len(params) < 2 or params[1] < 1 or (len(params) - 2) % (params[1] + 1):
            raise PacketError(f"feetech SYNC_WRITE: parameters do not split into (id, {params[1:2].hex()} bytes) records")
        address, size = params[0], params[1]
        records = params[2:]
        return address, {records[i]: bytes(records[i + 1 : i + 1 + size]) for i in range(0, len(records), size + 1)}

    def ping_reply(self, model_number: int) -> bytes:
        return b""  # the model number is register 3 (the vendor's SDK reads it after the PING)

