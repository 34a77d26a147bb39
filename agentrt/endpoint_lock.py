"""One binder per ipc endpoint: a second bind is refused, naming the process that holds it.

ZeroMQ's ipc bind removes whatever socket file is at the path, so a second
process binding the same name silently takes the endpoint over: new
subscribers reach it, and the first process goes on publishing to nobody.
Before binding ``ipc://PATH`` a process takes an exclusive ``flock`` on
``PATH.lock`` and writes its pid there. The kernel drops the lock when the
process dies, however it dies (``kill -9`` included), so a dead holder's lock
file is simply taken over; a live holder's pid goes into the error.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agentrt.errors import TransportError

__all__ = ["EndpointLock", "lock_path"]


def lock_path(address: str) -> Path | None:
    """``ipc:///run/cam`` -> ``/run/cam.lock``; None for endpoints that need no lock (tcp checks itself)."""
    if not address.startswith("ipc://"):
        return None
    return Path(address[len("ipc://") :] + ".lock")


class EndpointLock:
    """Held from ``acquire`` until ``release`` (or the process's end); removes its lock file on release."""

    def __init__(self, address: str, path: Path, fd: int) -> None:
        self.address = address
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, address: str) -> EndpointLock | None:
        """The lock of an ipc endpoint (None for others); TransportError naming the pid that holds it."""
        path = lock_path(address)
        if path is None:
            return None
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise TransportError(
                    f"{address} is in use by pid {holder}: another process publishes there; "
                    "stop it, or give this one another name or endpoint",
                    permanent=True,  # a live holder: a restart would meet it again
                ) from None
            # The holder we waited on may have released and removed the file between our open and
            # our flock: then we hold a lock on a name nobody can see. Start again on the new file.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(address, path, fd)

    def release(self) -> None:
        """Remove the lock file and drop the lock. Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: nobody else can have taken it
        finally:
            os.close(fd)
