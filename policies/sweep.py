"""Sweeps: one job per item (an episode's seed) over a pool of workers, on this machine or on Ray.

    config = SweepConfig(engine="local", workers=4)           # or engine="ray", address="auto" | "ray://HOST:PORT"
    sweep(config, MyWorkerSpec(...), items, on_result)        # on_result(index, result) as each one finishes

A worker is built once from a picklable ``WorkerSpec`` (``spec.open(threads)``: load a model, open a
simulator) and then runs item after item: a dynamic queue, so a worker takes the next item as soon
as it is done and a slow episode never stalls a static share of the others. Engines:

- ``local`` with ``workers`` 1: in this process, items in order (what a plain run does);
- ``local`` with more: that many processes taking items from one queue, one at a time each
  (spawned, not forked: a torch thread pool forked mid-use can hang; none outlives the sweep);
- ``ray``: that many Ray actors, each holding a share of a CPU (the cluster's CPUs over the workers,
  at most 1: on 2 cores an actor holding a whole CPU starves what waits behind it), fed by
  ``ray.util.ActorPool``. Without ``address`` a private single-node Ray starts for the sweep, on
  127.0.0.1 only (``LOOPBACK``), and is shut down after it (its raylet and GCS ignore SIGTERM, so only
  ``ray.shutdown()`` ends them); a Ray
  already started in this process (``ray.init`` by the caller) is used as it is and left running.
  Code the workers run must be importable on every node (agentrt installed there).

``on_result`` gets results in the order they finish; ``InOrder`` hands them on in item order instead
(a writer that must append episodes in seed order). Items and results travel pickled. Here, not in the
runtime core: the core starts no processes of its own (tests/agentrt/test_layers.py).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from agentrt.errors import AgentRTError, ConfigError, MissingDependencyError

__all__ = ["ENGINES", "check_engine", "LOOPBACK", "SweepConfig", "Worker", "WorkerSpec", "InOrder", "sweep", "import_ray", "connect_ray",
           "cpu_share", "raise_cause"]

ENGINES = ("local", "ray")
T = TypeVar("T")


class Worker(Protocol):
    """Runs one item at a time; ``close`` frees what ``WorkerSpec.open`` took."""

    def run(self, item: Any) -> Any: ...

    def close(self) -> None: ...


class WorkerSpec(Protocol):
    """Picklable recipe of a worker; ``threads``: the CPU threads it may use (0: leave as they are)."""

    def open(self, threads: int) -> Worker: ...


@dataclass(frozen=True)
class SweepConfig:
    engine: str = "local"  # local | ray
    workers: int = 1
    address: str = ""  # ray: "" starts a private one; "auto" joins the one running here; "ray://HOST:PORT" a remote one

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers: expected >= 1, got {self.workers}")
        check_engine(self.engine, self.address, "workers")


def check_engine(engine: str, address: str, what: str) -> None:
    """--engine and --address as the sweeps and the replicas take them; ``what`` runs there (workers, replicas)."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if address and engine != "ray":
        raise ConfigError(f"--address {address}: only with --engine ray (local {what} need no address)")
    if address and address != "auto" and not address.startswith("ray://"):
        raise ConfigError(f"--address: expected auto or ray://HOST:PORT, got {address!r}")


class InOrder(Generic[T]):
    """An ``on_result`` that passes results on in item order: a result waits until every earlier one came."""

    def __init__(self, deliver: Callable[[int, T], None]) -> None:
        self.deliver = deliver
        self.next = 0
        self.waiting: dict[int, T] = {}

    def __call__(self, index: int, result: T) -> None:
        self.waiting[index] = result
        while self.next in self.waiting:
            self.deliver(self.next, self.waiting.pop(self.next))
            self.next += 1


def sweep(config: SweepConfig, spec: WorkerSpec, items: Sequence[Any], on_result: Callable[[int, Any], None]) -> None:
    """Run every item on ``config``'s workers; ``on_result(index, result)`` as each finishes (module docstring)."""
    if not items:
        return
    workers = min(config.workers, len(items))
    if config.engine == "ray":
        _ray_sweep(config, workers, spec, items, on_result)
    elif workers == 1:
        worker = spec.open(0)
        try:
            for index, item in enumerate(items):
                on_result(index, worker.run(item))
        finally:
            worker.close()
    else:
        _local_sweep(workers, spec, items, on_result)


# ---- local processes -------------------------------------------------------------------------------
# Plain processes over two queues rather than multiprocessing.Pool: Pool.terminate, which its `with` calls
# on an error, hung for minutes here on a worker that failed (a lock held by a process it was ending).

_DONE = None  # on the job queue: no more jobs for this worker


def _local_worker(spec: WorkerSpec, threads: int, jobs: Any, results: Any, stop: Any) -> None:
    """A worker process: open, then (index, item) after (index, item) until ``_DONE`` or ``stop``."""
    try:
        worker = spec.open(threads)
    except Exception as exc:  # its own error, for the sweep to raise
        results.put((-1, False, exc))
        return
    try:
        while not stop.is_set():
            job = jobs.get()
            if job is _DONE:
                break
            try:
                results.put((job[0], True, worker.run(job[1])))
            except Exception as exc:
                results.put((job[0], False, exc))
                break
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the group: the driver says what stopped
        pass
    finally:
        worker.close()


def _local_sweep(workers: int, spec: WorkerSpec, items: Sequence[Any], on_result: Callable[[int, Any], None]) -> None:
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    jobs, results, stop = context.Queue(), context.Queue(), context.Event()
    for job in enumerate(items):
        jobs.put(job)
    for _ in range(workers):
        jobs.put(_DONE)
    processes = [context.Process(target=_local_worker, args=(spec, threads, jobs, results, stop), daemon=True)
                 for _ in range(workers)]
    for process in processes:
        process.start()
    try:
        for _ in range(len(items)):
            index, ok, value = _next_result(results, processes)
            if not ok:
                raise value
            on_result(index, value)
    finally:
        stop.set()
        for process in processes:  # they close their simulators and leave; one that does not is killed
            process.join(timeout=10.0)
            if process.is_alive():
                process.kill()
                process.join()
        jobs.cancel_join_thread()


def _next_result(results: Any, processes: list[Any]) -> tuple[int, bool, Any]:
    """The next result; an error when every worker died without one (killed, out of memory)."""
    import queue

    while True:
        try:
            return results.get(timeout=1.0)  # type: ignore[no-any-return]
        except queue.Empty:
            if not any(p.is_alive() for p in processes) and results.empty():
                codes = sorted({p.exitcode for p in processes})
                raise RuntimeError(f"every sweep worker ended before the sweep was done (exit codes {codes})") from None


# ---- Ray -------------------------------------------------------------------------------------------


class _RayWorker:
    """The body of a Ray actor: one worker, item after item."""

    def __init__(self, spec: WorkerSpec, threads: int) -> None:
        self.worker = spec.open(threads)

    def run(self, index: int, item: Any) -> tuple[int, Any]:
        return index, self.worker.run(item)

    def close(self) -> None:
        self.worker.close()


# Ray's own switch that keeps a node on 127.0.0.1 (meant for laptops); read when ray is imported, and by the
# raylet and GCS it starts. Otherwise Ray swaps 127.0.0.1 for the host's address and listens on every interface.
LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray(private: bool = False) -> Any:
    """ray, or one line saying how to install it; ``private``: a Ray of this process only, kept on loopback."""
    if private:
        os.environ.setdefault(LOOPBACK, "0")
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "--engine ray", "pip install 'agentrt[ray]'") from None
    return ray


def connect_ray(ray: Any, address: str) -> bool:
    """Start or join Ray unless this process already has; True when the caller must shut it down (finally)."""
    if ray.is_initialized():
        return False
    if address.startswith("ray://"):
        _probe(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        ray.shutdown()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"at {address}" if address else "on this machine"
        raise ConfigError(f"--engine ray: could not reach a Ray cluster {where} ({first}); start one with "
                          "`ray start --head`, check the address, or leave --address out for a private one") from None
    return True


def cpu_share(ray: Any, actors: int, resource: str = "CPU") -> float:
    """Each of ``actors``' share of the cluster's CPUs (or GPUs), at most 1 (on 2 cores a whole CPU each
    starves the rest)."""
    total = float(ray.cluster_resources().get(resource, 1.0))
    return max(0.01, min(1.0, math.floor(total / actors * 100) / 100))  # Ray counts CPUs in 1e-4 units


def raise_cause(exc: Exception) -> NoReturn:
    """Re-raise a Ray task's error: its cause when that is ours (one line for the user), else as it came."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, AgentRTError):
        raise cause from None
    raise exc


def _probe(address: str) -> None:
    """One line at once for a Ray client address nothing answers on (Ray's own client retries for ~35 s)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5.0).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--address {address}: no Ray client server answers there ({exc}); start the cluster's "
                          "head with `ray start --head` (its client port is 10001) or check HOST:PORT") from None


def _ray_sweep(config: SweepConfig, workers: int, spec: WorkerSpec, items: Sequence[Any],
               on_result: Callable[[int, Any], None]) -> None:
    ray = import_ray(private=not config.address)
    from ray.util import ActorPool

    owned = connect_ray(ray, config.address)
    actors: list[Any] = []
    try:
        share = cpu_share(ray, workers)
        actor = ray.remote(num_cpus=share)(_RayWorker)
        actors = [actor.remote(spec, max(1, int(share))) for _ in range(workers)]
        pool = ActorPool(actors)
        for job in enumerate(items):
            pool.submit(lambda a, j: a.run.remote(*j), job)
        while pool.has_next():
            try:
                index, result = pool.get_next_unordered()
            except ray.exceptions.RayTaskError as exc:  # a worker's own error, e.g. weights that do not load
                raise_cause(exc)
            on_result(index, result)
        ray.get([a.close.remote() for a in actors])
    finally:
        for a in actors:
            ray.kill(a)
        if owned:
            ray.shutdown()
