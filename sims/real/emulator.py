"""An emulated servo bus, for tests and for the dry run: no hardware needed.

``ServoBank`` plays a chain of servos in-process: it parses instruction
packets with the vendor's codec, answers PING / READ / WRITE / SYNC_READ /
SYNC_WRITE with status packets, and keeps a control table per servo. With the
torque on, a servo's present position follows its goal position at once. A
servo starts as one fresh from the factory would: its model number (per servo,
``models``), position mode, torque off, and on Feetech the EEPROM locked.

``PtyBusEmulator`` puts a bank behind a pseudo-terminal (``os.openpty``), so a
driver opens ``emulator.port`` exactly as it opens ``/dev/ttyACM0``. Faults can
be injected at any time (``BusFaults``): servos that never answer, corrupt
checksums, error bits in the status, a silent bus, and ``unplug()``, which
closes the pty like a pulled USB cable.

    with PtyBusEmulator("feetech", ids=[1, 2, 3, 4, 5, 6]) as emulator:
        bus = ServoBus(BusConfig(port=emulator.port, protocol="feetech"))
        bus.open()
        emulator.faults.missing_ids.add(3)   # servo 3 stops answering
"""

from __future__ import annotations

import logging
import os
import select
import threading
import tty
from dataclasses import dataclass, field

from sims.real.packets import (
    BROADCAST_ID,
    PING,
    READ,
    SYNC_READ,
    SYNC_WRITE,
    WRITE,
    Codec,
    Instruction,
    PacketError,
    Register,
)
from sims.real.protocols import make_codec

__all__ = ["BusFaults", "ServoBank", "PtyBusEmulator"]

log = logging.getLogger(__name__)

TABLE_BYTES = 256


@dataclass
class BusFaults:
    """Faults to inject; change them while the bus runs."""

    missing_ids: set[int] = field(default_factory=set)  # never answer (unpowered, unplugged from the chain)
    bad_checksum_ids: set[int] = field(default_factory=set)  # answer with a corrupt checksum / CRC
    error_bits: dict[int, int] = field(default_factory=dict)  # servo id -> error byte in its status packets
    silent: bool = False  # nothing answers (wrong baud rate, bus power off)


class ServoBank:
    """Servos with control tables, answering instruction packets; thread-safe."""

    def __init__(self, codec: Codec, ids: list[int], *, position_steps: int = 2048,
                 models: dict[int, int] | None = None) -> None:
        self.codec = codec
        self.faults = BusFaults()
        self.tables: dict[int, bytearray] = {}
        self.writes: list[tuple[int, str, int]] = []  # (servo id, register name, value), every write applied
        self.accesses: list[tuple[str, int, str]] = []  # ("read" | "write", servo id, register name), in order
        self.instructions = 0
        self.bad_packets = 0
        self._rx = bytearray()
        self._lock = threading.Lock()
        self._by_address = {r.address: r for r in codec.registers.values()}
        for servo_id in ids:
            table = bytearray(TABLE_BYTES)
            self.tables[servo_id] = table
            self._put(table, "model_number", (models or {}).get(servo_id, codec.model_number))
            self._put(table, "operating_mode", codec.position_mode)
            if codec.lock_register is not None:
                self._put(table, codec.lock_register, 1)
            self._put(table, "id", servo_id)
            self._put(table, "max_position_limit", codec.steps_per_rev - 1)
            self._put(table, "present_position", position_steps)
            self._put(table, "goal_position", position_steps)

    # -- for tests --------------------------------------------------------------------------------
    def value(self, servo_id: int, register: str) -> int:
        with self._lock:
            return self._get(self.tables[servo_id], register)

    def set_value(self, servo_id: int, register: str, value: int) -> None:
        """Change a register from outside (a hand moving the arm: set present_position)."""
        with self._lock:
            self._put(self.tables[servo_id], register, value)

    def torque_writes(self, value: int) -> list[int]:
        """Ids that were sent torque_enable = value, in order."""
        with self._lock:
            return [i for i, name, v in self.writes if name == "torque_enable" and v == value]

    # -- the bus ------------------------------------------------------------------------------------
    def handle(self, data: bytes) -> bytes:
        """Feed bytes from the host; return the bytes the servos answer."""
        out = bytearray()
        with self._lock:
            self._rx += data
            while True:
                try:
                    instruction, skip = self.codec.parse_instruction(self._rx)
                except PacketError as exc:
                    self.bad_packets += 1
                    log.debug("emulator: dropped a bad packet: %s", exc)
                    continue
                if instruction is None:
                    del self._rx[:skip]
                    return bytes(out)
                self.instructions += 1
                out += self._answer(instruction)

    def _answer(self, ins: Instruction) -> bytes:
        codec, faults = self.codec, self.faults
        if ins.instruction == SYNC_WRITE:
            address, records = codec.split_sync_write(ins.params)
            for servo_id, data in records.items():
                if servo_id in self.tables and servo_id not in faults.missing_ids:
                    self._write(servo_id, address, data)
            return b""
        if ins.instruction == SYNC_READ:
            address, size, ids = codec.split_sync_read(ins.params)
            return b"".join(self._status(i, self._read(i, address, size)) for i in ids if self._present(i))
        if ins.servo_id == BROADCAST_ID:
            if ins.instruction == WRITE:
                address, data = codec.split_write(ins.params)
                for servo_id in self.tables:
                    if servo_id not in faults.missing_ids:
                        self._write(servo_id, address, data)
            return b""  # broadcasts are never answered (PING broadcast is not emulated)
        if not self._present(ins.servo_id):
            return b""
        if ins.instruction == PING:
            return self._status(ins.servo_id, codec.ping_reply(self._get(self.tables[ins.servo_id], "model_number")))
        if ins.instruction == READ:
            address, size = codec.split_read(ins.params)
            return self._status(ins.servo_id, self._read(ins.servo_id, address, size))
        if ins.instruction == WRITE:
            address, data = codec.split_write(ins.params)
            self._write(ins.servo_id, address, data)
            return self._status(ins.servo_id, b"")
        return b""

    def _present(self, servo_id: int) -> bool:
        return servo_id in self.tables and servo_id not in self.faults.missing_ids and not self.faults.silent

    def _status(self, servo_id: int, params: bytes) -> bytes:
        packet = bytearray(self.codec.encode_status(servo_id, self.faults.error_bits.get(servo_id, 0), params))
        if servo_id in self.faults.bad_checksum_ids:
            packet[-1] ^= 0x5A
        return bytes(packet)

    def _read(self, servo_id: int, address: int, size: int) -> bytes:
        table = self.tables[servo_id]
        if self._get(table, "torque_enable"):
            self._put(table, "present_position", self._get(table, "goal_position"))
        register = self._by_address.get(address)
        self.accesses.append(("read", servo_id, register.name if register is not None else f"@{address}"))
        return bytes(table[address : address + size])

    def _write(self, servo_id: int, address: int, data: bytes) -> None:
        table = self.tables[servo_id]
        table[address : address + len(data)] = data
        register = self._by_address.get(address)
        self.accesses.append(("write", servo_id, register.name if register is not None else f"@{address}"))
        if register is not None and register.size == len(data):
            self.writes.append((servo_id, register.name, self.codec.decode_value(register, data)))

    def _reg(self, name: str) -> Register:
        return self.codec.registers[name]

    def _get(self, table: bytearray, name: str) -> int:
        r = self._reg(name)
        return self.codec.decode_value(r, bytes(table[r.address : r.address + r.size]))

    def _put(self, table: bytearray, name: str, value: int) -> None:
        r = self._reg(name)
        table[r.address : r.address + r.size] = self.codec.encode_value(r, value)


class PtyBusEmulator:
    """A ``ServoBank`` behind a pseudo-terminal; ``port`` is the path a driver opens."""

    def __init__(self, protocol: str, ids: list[int], *, position_steps: int = 2048,
                 models: dict[int, int] | None = None) -> None:
        self.bank = ServoBank(make_codec(protocol), ids, position_steps=position_steps, models=models)
        self._master = -1
        self._slave = -1
        self.port = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def faults(self) -> BusFaults:
        return self.bank.faults

    def start(self) -> PtyBusEmulator:
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)  # no echo: the host must never read its own instruction back
        self.port = os.ttyname(self._slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="servo-bus-emulator", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        master = self._master
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([master], [], [], 0.02)
                if not readable:
                    continue
                try:
                    data = os.read(master, 4096)
                except OSError:
                    return
                reply = self.bank.handle(data)
                if reply:
                    os.write(master, reply)
        finally:
            os.close(master)
            self._master = -1

    def unplug(self) -> None:
        """Close the pty's master side: the driver's next read or write fails, as with a pulled cable."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def close(self) -> None:
        self.unplug()
        if self._slave >= 0:
            os.close(self._slave)
            self._slave = -1

    def __enter__(self) -> PtyBusEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
