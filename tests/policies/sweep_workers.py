"""Workers for the sweep tests (`policies.sweep`): in a module of their own, as workers in spawned
processes and Ray actors must import what they run."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BarrierSpec:
    """Item 0 waits until every other item has run (each leaves a file in ``folder``): only a dynamic queue
    lets the other workers take them all; a static share of the items would give the waiting worker some."""

    folder: str
    items: int

    def open(self, threads: int) -> BarrierWorker:
        return BarrierWorker(Path(self.folder), self.items, threads)


class BarrierWorker:
    def __init__(self, folder: Path, items: int, threads: int) -> None:
        self.folder, self.items, self.threads = folder, items, threads

    def run(self, item: int) -> dict[str, object]:
        if item == 0:
            deadline = time.monotonic() + 60.0
            while len(list(self.folder.glob("done-*"))) < self.items - 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            waited_for_all = len(list(self.folder.glob("done-*"))) == self.items - 1
        else:
            (self.folder / f"done-{item}").touch()
            waited_for_all = True
        node = ""
        if _in_ray():
            import ray

            node = ray.get_runtime_context().get_node_id()
        return {"item": item, "square": item * item, "pid": os.getpid(), "threads": self.threads,
                "waited_for_all": waited_for_all, "node": node}

    def close(self) -> None:
        (self.folder / f"closed-{os.getpid()}").touch()


def _in_ray() -> bool:
    try:
        import ray
    except ImportError:
        return False
    return bool(ray.is_initialized())


def descendants(pid: int | None = None) -> set[int]:
    """The live (not zombie) processes below ``pid`` (default: this one), read from /proc: Ray's GCS, raylet
    and workers, which must all be gone after ``ray.shutdown()``."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid or os.getpid()}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def wait_gone(pids: set[int], timeout_s: float = 15.0) -> set[int]:
    """Of ``pids``, those still alive after up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    alive = {p for p in pids if _alive(p)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {p for p in alive if _alive(p)}
    return alive


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@dataclass(frozen=True)
class BrokenSpec:
    """A worker that cannot open (weights that do not load, say)."""

    def open(self, threads: int) -> BarrierWorker:
        from agentrt.errors import ModelError

        raise ModelError("cannot open: no weights at /nowhere")
