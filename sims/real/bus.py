"""A servo bus on a serial port: PING, READ, WRITE, SYNC_READ and SYNC_WRITE, with timeouts and retries.

The same class drives Feetech STS and Dynamixel Protocol 2.0 buses; the codec
(``sims.real.feetech``, ``sims.real.dynamixel``) holds what differs. The port is
opened with pyserial (``pip install pyserial``); in a dry run no port is
opened: an in-process emulated bus (``sims.real.emulator.ServoBank``) answers,
and every write is logged with servo ids, register, address and values.

Failures raise ``BusError`` (a ``RobotError``) in one line saying what and
what to do: a servo that does not answer within ``timeout_ms``, a corrupt
checksum, a servo reporting an error bit, or a port that failed
(``port_lost``: the cable was pulled).

    bus = ServoBus(BusConfig(port="/dev/ttyACM0", protocol="feetech"), ids=[1, 2, 3, 4, 5, 6])
    bus.open()
    positions = bus.sync_read("present_position")     # {1: 2048, 2: 1990, ...}
    bus.sync_write("goal_position", {1: 2100, 2: 2000})
    bus.close()
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from agentrt.errors import ConfigError, MissingDependencyError, RobotError
from sims.real.emulator import ServoBank
from sims.real.packets import BROADCAST_ID, PING, READ, SYNC_READ, SYNC_WRITE, WRITE, PacketError, Status
from sims.real.protocols import PROTOCOLS, make_codec

__all__ = ["BusConfig", "BusError", "ServoBus", "Transport", "SerialTransport", "LoopbackTransport"]

log = logging.getLogger(__name__)


@dataclass
class BusConfig:
    port: str = "/dev/ttyACM0"  # e.g. /dev/serial/by-id/usb-1a86_USB_Single_Serial_...-if00
    protocol: str = "feetech"  # feetech | dynamixel
    baudrate: int = 1_000_000
    timeout_ms: float = 20.0  # per status packet
    retries: int = 1  # a timed-out or corrupt transaction is tried this many more times
    dry_run: bool = False  # open no port: an emulated bus answers and writes are logged

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"BusConfig.protocol: expected one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if not (isinstance(self.baudrate, int) and self.baudrate > 0):
            raise ConfigError(f"BusConfig.baudrate: expected a positive int (1000000 for SO-100 / Koch), got {self.baudrate!r}")
        if not (isinstance(self.timeout_ms, (int, float)) and self.timeout_ms > 0):
            raise ConfigError(f"BusConfig.timeout_ms: expected > 0, got {self.timeout_ms!r}")
        if not (isinstance(self.retries, int) and self.retries >= 0):
            raise ConfigError(f"BusConfig.retries: expected an int >= 0, got {self.retries!r}")
        if not self.dry_run and not self.port:
            raise ConfigError("BusConfig.port: expected a serial port like /dev/ttyACM0, got ''; or set dry_run")


class BusError(RobotError):
    """A bus transaction failed; ``servo_id`` names the servo (-1: the port), ``port_lost`` a failed port."""

    def __init__(self, message: str, *, servo_id: int = -1, port_lost: bool = False) -> None:
        super().__init__(message)
        self.servo_id = servo_id
        self.port_lost = port_lost


class Transport(Protocol):
    """Bytes to and from the bus."""

    def write(self, data: bytes) -> None: ...

    def read(self, timeout_s: float) -> bytes:
        """Whatever arrived, waiting up to ``timeout_s`` for the first byte; b"" on timeout."""
        ...

    def reset_input(self) -> None: ...

    def close(self) -> None: ...


class SerialTransport:
    """A serial port through pyserial; every OS error becomes ``BusError(port_lost=True)``."""

    def __init__(self, port: str, baudrate: int) -> None:
        try:
            import serial
        except ImportError as exc:
            raise MissingDependencyError("pyserial", "serial-bus servos (SO-100, Koch)") from exc
        import termios

        self._errors: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)
        self.port = port
        try:
            self._serial = serial.Serial(port, baudrate, timeout=0, write_timeout=0.5, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise BusError(
                f"cannot open {port}: {exc}: is the arm plugged in, is it the right port (ls /dev/serial/by-id) "
                f"and may you use it (group dialout)?",
                port_lost=True,
            ) from None

    def _lost(self, exc: BaseException) -> BusError:
        return BusError(
            f"port {self.port} failed ({exc}): is the USB cable plugged in and the bus powered? Servo torque state is unknown",
            port_lost=True,
        )

    def write(self, data: bytes) -> None:
        try:
            self._serial.write(data)
            self._serial.flush()
        except self._errors as exc:
            raise self._lost(exc) from None

    def read(self, timeout_s: float) -> bytes:
        try:
            self._serial.timeout = max(0.0, timeout_s)
            data = self._serial.read(1)
            waiting = self._serial.in_waiting if data else 0
            return data + self._serial.read(waiting) if waiting else data
        except self._errors as exc:
            raise self._lost(exc) from None

    def reset_input(self) -> None:
        try:
            self._serial.reset_input_buffer()
        except self._errors as exc:
            raise self._lost(exc) from None

    def close(self) -> None:
        try:
            self._serial.close()
        except self._errors:
            pass


class LoopbackTransport:
    """The dry run's bus: bytes go to an in-process ``ServoBank`` and its answers come back."""

    def __init__(self, bank: ServoBank) -> None:
        self.bank = bank
        self._pending = b""

    def write(self, data: bytes) -> None:
        self._pending += self.bank.handle(data)

    def read(self, timeout_s: float) -> bytes:
        data, self._pending = self._pending, b""
        return data

    def reset_input(self) -> None:
        self._pending = b""

    def close(self) -> None:
        self._pending = b""


class ServoBus:
    """The servos ``ids`` on one port. Not thread-safe: one caller at a time (the arm holds a lock)."""

    def __init__(self, config: BusConfig, ids: list[int], *, transport: Transport | None = None,
                 models: dict[int, int] | None = None) -> None:
        self.config = config
        self.ids = list(ids)
        self.models = models  # the dry run's emulated servos: model number per id (None: the protocol's default)
        self.codec = make_codec(config.protocol)
        self.where = "the dry-run bus" if config.dry_run else config.port
        self._transport = transport
        self._given_transport = transport is not None
        self._rx = bytearray()
        self.retried = 0  # transactions that needed a retry

    @property
    def is_open(self) -> bool:
        return self._transport is not None

    def open(self) -> None:
        if self._transport is not None:
            return
        if self.config.dry_run:
            self._transport = LoopbackTransport(ServoBank(self.codec, self.ids, models=self.models))
            log.info("dry run: no port opened; an emulated %s bus with servos %s answers", self.codec.name, self.ids)
        else:
            self._transport = SerialTransport(self.config.port, self.config.baudrate)
        self._rx.clear()

    def close(self) -> None:
        if self._transport is not None and not self._given_transport:
            self._transport.close()
        self._transport = None

    # -- instructions -------------------------------------------------------------------------------
    def ping(self, servo_id: int) -> bytes:
        """The PING status parameters (Dynamixel: model number and firmware); raises if the servo is absent."""
        return self._transact(servo_id, PING, b"", [servo_id], "PING")[0].params

    def read(self, servo_id: int, register: str) -> int:
        reg = self.codec.register(register)
        status = self._transact(servo_id, READ, self.codec.read_params(reg), [servo_id], f"READ {register}")[0]
        return self.codec.decode_value(reg, status.params)

    def write(self, servo_id: int, register: str, value: int) -> None:
        reg = self.codec.register(register)
        params = self.codec.write_params(reg, self.codec.encode_value(reg, value))
        self._log_write("WRITE", register, {servo_id: value})
        expect = [] if servo_id == BROADCAST_ID else [servo_id]
        self._transact(servo_id, WRITE, params, expect, f"WRITE {register}")

    def sync_read(self, register: str, ids: list[int] | None = None) -> dict[int, int]:
        reg = self.codec.register(register)
        ids = list(self.ids if ids is None else ids)
        statuses = self._transact(BROADCAST_ID, SYNC_READ, self.codec.sync_read_params(reg, ids), ids, f"SYNC_READ {register}")
        return {s.servo_id: self.codec.decode_value(reg, s.params) for s in statuses}

    def sync_write(self, register: str, values: dict[int, int]) -> None:
        reg = self.codec.register(register)
        data = {servo_id: self.codec.encode_value(reg, int(v)) for servo_id, v in values.items()}
        self._log_write("SYNC_WRITE", register, values)
        self._transact(BROADCAST_ID, SYNC_WRITE, self.codec.sync_write_params(reg, data), [], f"SYNC_WRITE {register}")

    def set_torque(self, enabled: bool, ids: list[int] | None = None) -> None:
        """Torque on or off for ``ids`` (default: all), in one SYNC_WRITE."""
        self.sync_write("torque_enable", {i: int(enabled) for i in (self.ids if ids is None else ids)})

    # -- internals ------------------------------------------------------------------------------------
    def _log_write(self, kind: str, register: str, values: dict[int, int]) -> None:
        if not self.config.dry_run:
            return
        reg = self.codec.register(register)
        shown = " ".join(f"{i}={int(v)}" for i, v in values.items())
        log.info("dry run: %s %s (addr %d, %d B): %s", kind, register, reg.address, reg.size, shown)

    def _transact(self, servo_id: int, instruction: int, params: bytes, expect: list[int], what: str) -> list[Status]:
        if self._transport is None:
            raise BusError(f"the bus on {self.where} is not open: call open() (connect the arm) first")
        packet = self.codec.encode_instruction(servo_id, instruction, params)
        for attempt in range(self.config.retries + 1):
            try:
                return self._exchange(packet, expect, what)
            except BusError as exc:
                if exc.port_lost or attempt == self.config.retries:
                    raise
                self.retried += 1
                log.debug("retrying %s on %s after: %s", what, self.where, exc)
        raise AssertionError("unreachable")

    def _exchange(self, packet: bytes, expect: list[int], what: str) -> list[Status]:
        transport = self._transport
        assert transport is not None
        transport.reset_input()
        self._rx.clear()
        transport.write(packet)
        statuses: list[Status] = []
        timeout_s = self.config.timeout_ms / 1e3
        for index, servo_id in enumerate(expect):
            status = self._read_status(transport, expect[index:], timeout_s, what, heard_any=bool(statuses))
            if status.error:
                raise BusError(
                    f"servo {servo_id} on {self.where} reports {self.codec.describe_error(status.error)} "
                    f"(error byte 0x{status.error:02x}) during {what}: check its load, temperature and supply",
                    servo_id=servo_id,
                )
            statuses.append(status)
        return statuses

    def _read_status(self, transport: Transport, expect: list[int], timeout_s: float, what: str, *, heard_any: bool) -> Status:
        """The status of ``expect[0]``; ``expect[1:]`` are the servos due after it (a SYNC_READ)."""
        servo_id = expect[0]
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                status, skip = self.codec.parse_status(self._rx)
            except PacketError as exc:
                raise BusError(
                    f"corrupt reply from servo {exc.servo_id if exc.servo_id >= 0 else servo_id} on {self.where} "
                    f"during {what}: {exc}; check the wiring and that one program uses the port",
                    servo_id=servo_id,
                ) from None
            if status is not None and status.servo_id == servo_id:
                return status
            if status is not None and status.servo_id not in expect[1:]:
                raise BusError(
                    f"reply from servo {status.servo_id} on {self.where} while waiting for servo {servo_id} "
                    f"({what}): two servos share an id, or a reply came late",
                    servo_id=servo_id,
                )
            # A later servo answered first: this one is missing. Otherwise wait for more bytes.
            missing = status is not None
            del self._rx[:skip]
            remaining = deadline - time.monotonic()
            if missing or remaining <= 0:
                hint = "is it powered and wired?" if heard_any or missing or len(self.ids) == 1 else (
                    f"is it powered and wired, and is the baud rate {self.config.baudrate}?")
                raise BusError(
                    f"no reply from servo {servo_id} on {self.where} within {self.config.timeout_ms:g} ms ({what}): {hint}",
                    servo_id=servo_id,
                )
            self._rx += transport.read(remaining)
