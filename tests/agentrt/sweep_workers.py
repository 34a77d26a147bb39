"""Workers for the sweep tests (`agentrt.sweep`): in a module of their own, as workers in spawned
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
