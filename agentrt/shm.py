"""A shared-memory ring of frame slots for large frames on one host.

The writer copies a frame into the next slot (the one unavoidable copy) and
sends only a small ZeroMQ notice (segment name, slot, generation). Readers map
the segment and build a numpy view: no further copy.

Each slot has a sequence lock and a generation, so a reader can tell whether
the slot still holds the frame it was told about (the writer laps the ring
after ``slots`` frames):

    ring header (64 B): magic b"AGRTSHM1" | slots u32 | pad u32 | slot_bytes u64 | owner_pid u32
    each slot (64 B header + slot_bytes, 64-byte aligned):
        lock u64 (odd while the writer is inside) | generation u64 | nbytes u64

Segments live in /dev/shm as ``agentrt-<owner pid>-<name>-<random>``. They are
removed by the owner on close, by a tiny reaper process if the owner dies
(kill -9 included), and by ``sweep_stale`` whenever a new ring is created.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import secrets
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from agentrt.errors import TransportError
from agentrt.messages import ShmRef
from agentrt.process import process_alive

__all__ = ["ShmRingWriter", "ShmRingReader", "sweep_stale", "SHM_DIR", "segment_path"]

log = logging.getLogger(__name__)

SHM_DIR = Path(os.environ.get("AGENTRT_SHM_DIR", "/dev/shm"))
_MAGIC = b"AGRTSHM1"
_RING = struct.Struct("<8sIIQI")  # magic, slots, pad, slot_bytes, owner pid
_SLOT = struct.Struct("<QQQ")  # lock, generation, nbytes
_HEADER_BYTES = 64
_NAME_RE = re.compile(r"^agentrt-(\d+)-[A-Za-z0-9_.]{1,64}-[0-9a-f]{8}$")


def segment_path(name: str) -> Path:
    """The file of a segment name from the wire; refuses anything but our own names (no path tricks)."""
    if not _NAME_RE.match(name):
        raise TransportError(f"shared-memory segment name {name!r} is not an agentrt segment name")
    return SHM_DIR / name


def _slot_stride(slot_bytes: int) -> int:
    return _HEADER_BYTES + ((slot_bytes + 63) & ~63)


def sweep_stale() -> list[str]:
    """Remove segments whose owner process is gone; returns the names removed."""
    removed: list[str] = []
    if not SHM_DIR.is_dir():
        return removed
    for path in SHM_DIR.glob("agentrt-*"):
        match = _NAME_RE.match(path.name)
        if match and not process_alive(int(match.group(1))):
            try:
                path.unlink()
                removed.append(path.name)
            except FileNotFoundError:
                pass
    if removed:
        log.info("removed %d stale shared-memory segment(s) of dead processes", len(removed))
    return removed


class ShmRingWriter:
    """Owner side: creates the segment, writes frames into slots round-robin."""

    def __init__(self, name: str, slot_bytes: int, *, slots: int = 8, reaper: bool = True) -> None:
        if slots < 2 or slot_bytes <= 0:
            raise TransportError(f"a shared-memory ring needs >= 2 slots and slot_bytes > 0, got {slots} and {slot_bytes}")
        clean = re.sub(r"[^A-Za-z0-9_.]", "_", name)[:64] or "ring"
        self.name = f"agentrt-{os.getpid()}-{clean}-{secrets.token_hex(4)}"
        self.path = SHM_DIR / self.name
        self.slots = slots
        self.slot_bytes = slot_bytes
        self._stride = _slot_stride(slot_bytes)
        self._next_slot = 0
        self._generation = 0
        self._reaper: subprocess.Popen[bytes] | None = None
        sweep_stale()
        size = _HEADER_BYTES + slots * self._stride
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        os.close(fd)
        _RING.pack_into(self._map, 0, _MAGIC, slots, 0, slot_bytes, os.getpid())
        if reaper:
            self._reaper = _start_reaper(self.path)

    def write(self, array: np.ndarray) -> ShmRef:
        """Copy ``array`` into the next slot and return where it is."""
        nbytes = array.nbytes
        if nbytes > self.slot_bytes:
            raise TransportError(f"frame of {nbytes} bytes does not fit a {self.slot_bytes}-byte slot")
        slot = self._next_slot
        self._next_slot = (slot + 1) % self.slots
        base = _HEADER_BYTES + slot * self._stride
        lock, _, _ = _SLOT.unpack_from(self._map, base)
        _SLOT.pack_into(self._map, base, lock + 1, 0, 0)  # odd: readers see the slot as being written
        dest = np.frombuffer(self._map, dtype=np.uint8, count=nbytes, offset=base + _HEADER_BYTES)
        np.copyto(dest, np.ascontiguousarray(array).reshape(-1).view(np.uint8))
        self._generation += 1
        _SLOT.pack_into(self._map, base, lock + 2, self._generation, nbytes)
        return ShmRef(self.name, slot, self._generation)

    def close(self) -> None:
        if getattr(self, "_map", None) is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # a view is still alive somewhere; the mapping goes with the process
            self._map = None  # type: ignore[assignment]
        self.path.unlink(missing_ok=True)
        if self._reaper is not None:
            self._reaper.kill()
            self._reaper.wait()
            self._reaper = None

    def __enter__(self) -> ShmRingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class ShmRingReader:
    """Reader side: maps a segment named by a notice and gives numpy views of its slots."""

    def __init__(self, name: str) -> None:
        path = segment_path(name)
        self.name = name
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise TransportError(f"shared-memory segment {name} is gone (its publisher exited)") from None
        try:
            size = os.fstat(fd).st_size
            if size < _HEADER_BYTES:
                raise TransportError(f"shared-memory segment {name} is too small ({size} bytes) to be a ring")
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        magic, self.slots, _, self.slot_bytes, self.owner_pid = _RING.unpack_from(self._map, 0)
        self._stride = _slot_stride(self.slot_bytes)
        if magic != _MAGIC or _HEADER_BYTES + self.slots * self._stride > size:
            raise TransportError(f"shared-memory segment {name} is not a valid agentrt ring")

    def view(self, ref: ShmRef, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A read-only view of the slot; TransportError if it no longer holds ``ref``'s frame."""
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if ref.slot >= self.slots or nbytes > self.slot_bytes:
            raise TransportError(f"notice for slot {ref.slot} ({nbytes} bytes) does not fit ring {self.name}")
        base = _HEADER_BYTES + ref.slot * self._stride
        lock, generation, stored = _SLOT.unpack_from(self._map, base)
        if lock % 2 or generation != ref.generation or stored != nbytes:
            raise TransportError(f"slot {ref.slot} of {self.name} was overwritten before it was read")
        array = np.frombuffer(self._map, dtype=dtype, count=nbytes // dtype.itemsize, offset=base + _HEADER_BYTES)
        return array.reshape(shape)

    def intact(self, ref: ShmRef) -> bool:
        """True while the slot still holds ``ref``'s frame (check after using a view)."""
        base = _HEADER_BYTES + ref.slot * self._stride
        lock, generation, _ = _SLOT.unpack_from(self._map, base)
        return lock % 2 == 0 and generation == ref.generation

    def close(self) -> None:
        try:
            self._map.close()
        except BufferError:
            pass  # views still alive; the mapping is released with them


def _start_reaper(path: Path) -> subprocess.Popen[bytes]:
    # Its own session, so a Ctrl-C or a kill of our process group does not take it
    # before it has cleaned up; it exits as soon as we do.
    return subprocess.Popen(
        [sys.executable, "-m", "agentrt.shm", str(os.getpid()), str(path)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _reap(owner_pid: int, path: str) -> None:
    """Wait for ``owner_pid`` to exit, then remove ``path``."""
    try:
        pidfd = os.pidfd_open(owner_pid)
        select.select([pidfd], [], [])
    except ProcessLookupError:
        pass  # already gone
    except OSError:  # no pidfd support (old kernel): poll instead
        while process_alive(owner_pid):
            time.sleep(0.2)
    Path(path).unlink(missing_ok=True)


if __name__ == "__main__":
    _reap(int(sys.argv[1]), sys.argv[2])
