"""The vendors' SDKs on agentrt's emulated bus: an in-memory port and a recording transport.

Both SDKs (``scservo_sdk`` from ftservo-python-sdk, ``dynamixel_sdk``) talk through a ``PortHandler`` that
wraps pyserial. ``memory_port`` subclasses the SDK's own handler and replaces only the byte I/O: what the SDK
writes is recorded in ``port.sent`` and fed to a ``ServoBank``; the bank's answer is what the SDK reads next.
The SDK's timing code (packet timeouts) runs unchanged.
"""

from __future__ import annotations

from typing import Any

from sims.real.bus import LoopbackTransport
from sims.real.emulator import ServoBank


def memory_port(base: type, bank: ServoBank | None) -> Any:
    """An instance of a subclass of the SDK's ``PortHandler`` ``base``, open, wired to ``bank`` (None: nothing answers)."""

    class MemoryPort(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__("memory")
            self.sent: list[bytes] = []
            self._rx = bytearray()
            self.is_open = True
            self.tx_time_per_byte = 0.01  # 1 Mbaud: 10 bits per byte

        def openPort(self) -> bool:  # noqa: N802 (the SDK's names)
            self.is_open = True
            return True

        def closePort(self) -> None:  # noqa: N802
            self.is_open = False

        def setBaudRate(self, baudrate: int) -> bool:  # noqa: N802
            self.baudrate = baudrate
            return True

        def clearPort(self) -> None:  # noqa: N802
            self._rx.clear()

        def getBytesAvailable(self) -> int:  # noqa: N802
            return len(self._rx)

        def readPort(self, length: int) -> bytes:  # noqa: N802
            data = bytes(self._rx[:length])
            del self._rx[:length]
            return data

        def writePort(self, packet: list[int] | bytes) -> int:  # noqa: N802
            data = bytes(packet)
            self.sent.append(data)
            if bank is not None:
                self._rx += bank.handle(data)
            return len(data)

        def feed(self, data: bytes) -> None:
            """Bytes for the SDK to read next (a status packet made elsewhere)."""
            self._rx += data

    return MemoryPort()


class RecordingTransport(LoopbackTransport):
    """agentrt's side: the dry run's loopback transport, keeping every packet the bus writes."""

    def __init__(self, bank: ServoBank) -> None:
        super().__init__(bank)
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))
        super().write(data)
