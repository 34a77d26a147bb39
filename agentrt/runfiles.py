"""Files a process makes while it runs, removed when it ends, and swept when it died without removing them.

Two kinds of things are left behind by a process that is killed (kill -9, a
crash, a power cut) or that forgets: ipc socket files (ZeroMQ never unlinks
the file of an ``ipc://`` endpoint it bound) and private folders (a
supervisor's run folder, a benchmark's temp folder). The rules:

- each process removes what it made: `bound_socket` / `remove_socket` around
  a bind (the file is removed only if it is still ours, never one another
  process has bound since), `owned_dir` / `temporary_dir` for folders;
- each owned folder holds an owner stamp (``.owner``: pid and process start
  time, so a reused pid does not look alive), and `sweep` removes the folders
  whose owner is dead and the socket files nobody listens on any more. Every
  bind and every new owned folder sweeps its parent once per process.

    with temporary_dir("agentrt-bench-qa-") as tmp:     # /tmp/agentrt-bench-qa-XXXX, gone after
        ...
    folder = owned_dir(run_dir(), "pipeline_demo-")    # remove_dir(folder) at the end
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from agentrt.process import process_alive

__all__ = ["OWNER_FILE", "owned_dir", "remove_dir", "temporary_dir", "sweep", "sweep_once", "bound_socket",
           "remove_socket", "owner_alive", "SocketFile"]

log = logging.getLogger(__name__)

OWNER_FILE = ".owner"
GRACE_S = 2.0  # younger files are never swept: a socket between bind() and listen(), a folder being set up
SocketFile = tuple[Path, int, int]  # path, st_dev, st_ino of a socket file this process bound

_swept: set[Path] = set()


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc), "" if unknown: tells a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner_alive(folder: Path) -> bool:
    """True unless ``folder``'s owner stamp names a process that is gone (no stamp: True, not ours to judge)."""
    try:
        fields = (folder / OWNER_FILE).read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return True
    if not process_alive(pid):
        return False
    started = fields[1] if len(fields) > 1 else ""
    return not started or _start_time(pid) in ("", started)


def owned_dir(parent: str | Path, prefix: str) -> Path:
    """A new private folder ``parent/prefixXXXX`` stamped with this process; sweeps ``parent`` first."""
    base = Path(parent)
    base.mkdir(parents=True, exist_ok=True)
    sweep_once(base, prefix)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    (path / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    return path


def remove_dir(folder: str | Path) -> None:
    """Remove an owned folder and everything in it (no error if it is gone already)."""
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def temporary_dir(prefix: str, parent: str | Path | None = None) -> Iterator[Path]:
    """An owned folder (default: in the temp dir) removed on the way out; a killed owner's is swept by the next."""
    folder = owned_dir(parent if parent is not None else tempfile.gettempdir(), prefix)
    try:
        yield folder
    finally:
        remove_dir(folder)


def _listening(path: Path) -> bool:
    """Does a process accept connections on this unix socket file? (A refused connect is the only 'no'.)"""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True  # backlog full (EAGAIN), path too long, no permission: leave it alone
    finally:
        probe.close()
    return True


def _old(path: Path, now: float) -> bool:
    try:
        return now - path.lstat().st_mtime > GRACE_S
    except OSError:
        return False


def _dead_socket(path: Path, now: float) -> SocketFile | None:
    """The file, if it is a socket nobody listens on (older than the grace)."""
    try:
        st = path.lstat()
    except OSError:
        return None
    if not stat.S_ISSOCK(st.st_mode) or now - st.st_mtime <= GRACE_S or _listening(path):
        return None
    return path, st.st_dev, st.st_ino


def sweep(parent: str | Path, prefix: str = "") -> list[str]:
    """Remove, directly in ``parent``, what dead processes left (names starting with ``prefix``); returns them.

    - a folder with an owner stamp whose process is gone;
    - a folder without a stamp that holds nothing but socket files nobody listens on (older run folders);
    - a socket file nobody listens on.
    Anything younger than `GRACE_S` is left alone.
    """
    base = Path(parent)
    removed: list[str] = []
    now = time.time()
    try:
        entries = [p for p in base.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for path in entries:
        try:
            if path.is_symlink():
                continue
            if path.is_dir():
                if (path / OWNER_FILE).exists():
                    stale = not owner_alive(path)
                else:
                    inside = list(path.iterdir())
                    stale = bool(inside) and _old(path, now) and all(_dead_socket(p, now) is not None for p in inside)
                if stale:
                    remove_dir(path)
                    removed.append(path.name)
            else:
                dead = _dead_socket(path, now)
                if dead is not None:
                    remove_socket(dead)  # only that file: not one a restarted process bound meanwhile
                    removed.append(path.name)
        except OSError:
            continue  # gone meanwhile, or not ours to touch
    if removed:
        log.info("removed %d file(s) left in %s by processes that are gone: %s", len(removed), base,
                 ", ".join(sorted(removed)[:5]) + (" ..." if len(removed) > 5 else ""))
    return removed


def sweep_once(parent: str | Path, prefix: str = "") -> None:
    """`sweep` ``parent``, the first time this process asks for it."""
    key = Path(parent).resolve() / prefix
    if key not in _swept:
        _swept.add(key)
        sweep(parent, prefix)


def ipc_file(address: str) -> Path | None:
    """The socket file of an ``ipc://`` address (None for other transports and abstract sockets)."""
    if not address.startswith("ipc://") or address.startswith("ipc://@"):
        return None
    return Path(address[len("ipc://"):])


def bound_socket(address: str) -> SocketFile | None:
    """Call right after binding ``address``: which file is ours, so `remove_socket` removes only that one."""
    path = ipc_file(address)
    if path is None:
        return None
    try:
        st = path.lstat()
    except OSError:
        return None
    return path, st.st_dev, st.st_ino


def remove_socket(bound: SocketFile | None) -> None:
    """Remove the socket file we bound, unless another process has bound the same path since."""
    if bound is None:
        return
    path, dev, ino = bound
    try:
        st = path.lstat()
        if (st.st_dev, st.st_ino) == (dev, ino):
            path.unlink()
    except OSError:
        pass
