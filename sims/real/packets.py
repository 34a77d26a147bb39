"""What the two bus protocols have in common: packets, registers, and the codec interface.

A codec turns (servo id, instruction, parameters) into bytes and a byte stream
back into packets, for one vendor's protocol. The bus (``sims.real.bus``) and
the emulator (``sims.real.emulator``) use the same codec, each from its side:
the bus encodes instructions and parses status packets, the emulator the other
way round.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from agentrt.errors import RobotError

__all__ = [
    "PING",
    "READ",
    "WRITE",
    "SYNC_READ",
    "SYNC_WRITE",
    "BROADCAST_ID",
    "INSTRUCTION_NAMES",
    "Register",
    "Instruction",
    "Status",
    "PacketError",
    "Codec",
    "encode_sign_magnitude",
    "decode_sign_magnitude",
]

# Instruction codes shared by Feetech STS/SCS and Dynamixel Protocol 2.0.
PING = 0x01
READ = 0x02
WRITE = 0x03
SYNC_READ = 0x82
SYNC_WRITE = 0x83
BROADCAST_ID = 0xFE
INSTRUCTION_NAMES = {PING: "PING", READ: "READ", WRITE: "WRITE", SYNC_READ: "SYNC_READ", SYNC_WRITE: "SYNC_WRITE"}


class PacketError(RobotError):
    """A packet on the bus is malformed: bad checksum / CRC, impossible length."""

    def __init__(self, message: str, servo_id: int = -1) -> None:
        super().__init__(message)
        self.servo_id = servo_id


@dataclass(frozen=True)
class Register:
    """One entry of a servo's control table.

    Signed values come in two conventions: ``signed`` is two's complement (Dynamixel); ``sign_bit`` is
    sign-magnitude (Feetech STS): that bit is the sign, the bits below it the magnitude.
    """

    name: str
    address: int
    size: int  # bytes
    signed: bool = False  # two's complement
    sign_bit: int | None = None  # sign-magnitude: index of the sign bit


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    """``value`` as sign-magnitude: |value| in the bits below ``sign_bit``, the sign in that bit (-100 @15 = 0x8064)."""
    limit = (1 << sign_bit) - 1
    if abs(value) > limit:
        raise RobotError(f"{value} does not fit sign-magnitude with the sign at bit {sign_bit} (-{limit}..{limit})")
    return (-value | (1 << sign_bit)) if value < 0 else value


def decode_sign_magnitude(raw: int, sign_bit: int) -> int:
    """The inverse of ``encode_sign_magnitude``; bits above the sign bit are ignored (as LeRobot does)."""
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if (raw >> sign_bit) & 1 else magnitude


@dataclass(frozen=True)
class Instruction:
    """An instruction packet (host -> servo)."""

    servo_id: int
    instruction: int
    params: bytes


@dataclass(frozen=True)
class Status:
    """A status packet (servo -> host): ``error`` is the servo's error byte, 0 when all is well."""

    servo_id: int
    error: int
    params: bytes


class Codec(abc.ABC):
    """One vendor's packet format and control table."""

    name: str
    steps_per_rev: int = 4096
    registers: dict[str, Register]
    model_number: int  # what PING reports for the servo the emulator plays, unless told another
    model_names: dict[int, str]  # model number -> the servo's name, for messages
    position_mode: int  # operating_mode value of position control: what connect sets
    position_modes: frozenset[int]  # operating_mode values connect accepts as position control
    mode_names: dict[int, str]  # operating_mode value -> its name, for messages
    lock_register: str | None = None  # a register that must be 0 to write the EEPROM (Feetech's lock)

    # -- packets -----------------------------------------------------------------------------
    @abc.abstractmethod
    def encode_instruction(self, servo_id: int, instruction: int, params: bytes) -> bytes: ...

    @abc.abstractmethod
    def encode_status(self, servo_id: int, error: int, params: bytes) -> bytes: ...

    @abc.abstractmethod
    def parse_instruction(self, buffer: bytearray) -> tuple[Instruction | None, int]:
        """The first complete instruction in ``buffer`` and the bytes it used (skipped noise included).

        (None, n): no complete packet yet; drop ``n`` leading bytes of noise and wait for more.
        Raises PacketError for a packet with a bad checksum (after which its bytes are dropped).
        """

    @abc.abstractmethod
    def parse_status(self, buffer: bytearray) -> tuple[Status | None, int]:
        """Like ``parse_instruction``, for status packets."""

    @abc.abstractmethod
    def describe_error(self, error: int) -> str:
        """The servo's error byte in words, e.g. 'overload, overheat'."""

    # -- parameters of the instructions ----------------------------------------------------------
    @abc.abstractmethod
    def read_params(self, register: Register) -> bytes: ...

    @abc.abstractmethod
    def write_params(self, register: Register, data: bytes) -> bytes: ...

    def sync_read_params(self, register: Register, ids: list[int]) -> bytes:
        """SYNC_READ: the READ parameters (address, length: each protocol's own widths), then the ids."""
        return self.read_params(register) + bytes(ids)

    def sync_write_params(self, register: Register, data: dict[int, bytes]) -> bytes:
        """SYNC_WRITE: the READ parameters, then each id followed by its data."""
        out = bytearray(self.read_params(register))
        for servo_id, value in data.items():
            out.append(servo_id)
            out += value
        return bytes(out)

    @abc.abstractmethod
    def split_read(self, params: bytes) -> tuple[int, int]:
        """(address, length) of a READ instruction's parameters (the emulator's side)."""

    @abc.abstractmethod
    def split_write(self, params: bytes) -> tuple[int, bytes]:
        """(address, data) of a WRITE instruction's parameters."""

    @abc.abstractmethod
    def split_sync_read(self, params: bytes) -> tuple[int, int, list[int]]:
        """(address, length, ids) of a SYNC_READ."""

    @abc.abstractmethod
    def split_sync_write(self, params: bytes) -> tuple[int, dict[int, bytes]]:
        """(address, {id: data}) of a SYNC_WRITE."""

    @abc.abstractmethod
    def ping_reply(self, model_number: int) -> bytes:
        """The parameters of a PING status (empty for Feetech, model + firmware for Dynamixel)."""

    def model_from_ping(self, params: bytes) -> int | None:
        """The model number a PING status carries; None where the protocol sends none (read register 3)."""
        return None

    def model_name(self, model_number: int) -> str:
        return self.model_names.get(model_number, "servo of unknown model")

    def mode_name(self, mode: int) -> str:
        return self.mode_names.get(mode, "unknown")

    # -- values -------------------------------------------------------------------------------
    def encode_value(self, register: Register, value: int) -> bytes:
        """Little-endian (both STS and Dynamixel X); two's complement or sign-magnitude as the register says."""
        if register.sign_bit is not None:
            try:
                raw = encode_sign_magnitude(int(value), register.sign_bit)
            except RobotError as exc:
                raise RobotError(f"register {register.name}: value {exc}") from None
            return raw.to_bytes(register.size, "little")
        low = -(1 << (8 * register.size - 1)) if register.signed else 0
        high = (1 << (8 * register.size - (1 if register.signed else 0))) - 1
        if not low <= value <= high:
            raise RobotError(f"register {register.name}: value {value} does not fit {register.size} byte(s) ({low}..{high})")
        return int(value).to_bytes(register.size, "little", signed=register.signed)

    def decode_value(self, register: Register, data: bytes) -> int:
        if len(data) != register.size:
            raise PacketError(f"register {register.name}: expected {register.size} byte(s), got {len(data)}")
        if register.sign_bit is not None:
            return decode_sign_magnitude(int.from_bytes(data, "little"), register.sign_bit)
        return int.from_bytes(data, "little", signed=register.signed)

    def encode(self, name: str, value: int) -> bytes:
        """The bytes of ``value`` in register ``name``, in this vendor's convention (e.g. STS -100 -> 64 80)."""
        return self.encode_value(self.register(name), value)

    def decode(self, name: str, data: bytes) -> int:
        """The value of register ``name`` from its bytes."""
        return self.decode_value(self.register(name), data)

    def register(self, name: str) -> Register:
        try:
            return self.registers[name]
        except KeyError:
            raise RobotError(f"{self.name}: unknown register '{name}': expected one of {', '.join(self.registers)}") from None
