"""Policy-server replicas: R ``PolicyServer``s as local processes or Ray actors; robots still speak ZeroMQ.

    config = ReplicaConfig(replicas=2, engine="ray", port=7700)      # or engine="local"; address="auto" | "ray://..."
    with Replicas(config, PolicyServerNodeConfig(decoding="consistency")) as replicas:
        print(replicas.endpoints)      # ["tcp://10.0.0.5:7700", "tcp://10.0.0.6:7701"]: hand them to the robots
        replicas.check()               # one line (ReplicaError) when a replica has died

Each replica is a whole server (the ROUTER loop of ``policies.vla.server``, batching its own robots) bound to
``tcp://<its node's IP>:<port + index>`` (``port`` 0: a free port each, reported back); on this machine and
on a private Ray that IP is 127.0.0.1. A robot sticks to one replica (``policies.vla.fleet.pick_server``):
its memory (previous chunk, episode) lives there. Ray actors hold a share of a CPU (as sweep workers,
``policies.sweep.cpu_share``) and, when the device is cuda, a GPU (a share of one when the replicas
outnumber the GPUs); without ``address`` a private Ray starts on 127.0.0.1 and is shut down by ``close``
(the only thing that ends its raylet and GCS).
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from dataclasses import dataclass, replace
from typing import Any

from agentrt.errors import AgentRTError, ConfigError
from policies.sweep import check_engine, connect_ray, cpu_share, import_ray, raise_cause
from policies.vla.server import PolicyServer, PolicyServerNodeConfig

__all__ = ["ReplicaConfig", "ReplicaError", "Replicas"]

START_TIMEOUT_S = 180.0  # a replica loads its weights and runs a warm-up forward before it reports
STOP_TIMEOUT_S = 10.0  # then a replica that has not said goodbye is killed
LOOPBACK_IP = "127.0.0.1"


class ReplicaError(AgentRTError):
    """A replica died while serving (its robots get no chunks)."""


@dataclass(frozen=True)
class ReplicaConfig:
    replicas: int = 1
    engine: str = "local"  # local: processes on this machine; ray: Ray actors
    address: str = ""  # ray: "" starts a private one; "auto" joins the one running here; "ray://HOST:PORT" a remote one
    port: int = 7700  # replica i binds port + i; 0: each a free port, reported back

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ConfigError(f"--replicas: expected >= 1, got {self.replicas}")
        check_engine(self.engine, self.address, "replicas")
        if self.port != 0 and not 1024 <= self.port <= 65535 - self.replicas + 1:
            raise ConfigError(f"--port: expected 0 (free ports) or 1024..{65536 - self.replicas} for "
                              f"{self.replicas} replica(s), got {self.port}")

    def endpoint(self, index: int, host: str) -> str:
        return f"tcp://{host}:{'*' if self.port == 0 else self.port + index}"


class _Serving:
    """One open PolicyServer answering on a thread of its own until ``stop`` (the body of a process or actor)."""

    def __init__(self, config: PolicyServerNodeConfig) -> None:
        self.server = PolicyServer(config)
        self.server.open()  # one line (ConfigError) for a port in use, before anything serves
        self.endpoint = self.server.endpoint
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="policy-server", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self.server.serve(timeout_ms=50)
        except Exception as exc:  # reported by alive(), so the caller's health check names it
            self.error = f"{type(exc).__name__}: {exc}".splitlines()[0]

    def alive(self) -> str:
        """"" while serving, else why not."""
        return "" if self._thread.is_alive() else (self.error or "its serving loop ended")

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=STOP_TIMEOUT_S)
        self.server.close()
        return self.server.stats.as_dict()


class _RayReplica:
    """The body of a Ray actor: opened by ``open`` (not the constructor) so its error comes back as a task's."""

    def __init__(self) -> None:
        self.serving: _Serving | None = None

    def open(self, replicas: ReplicaConfig, index: int, config: PolicyServerNodeConfig) -> str:
        import ray

        host = ray.util.get_node_ip_address()  # 127.0.0.1 on a private Ray (policies.sweep.LOOPBACK)
        self.serving = _Serving(replace(config, endpoint=replicas.endpoint(index, host)))
        return self.serving.endpoint

    def alive(self) -> str:
        return self.serving.alive() if self.serving is not None else "not open"

    def stop(self) -> dict[str, Any]:
        return self.serving.stop() if self.serving is not None else {}


def _local_replica(config: PolicyServerNodeConfig, index: int, out: Any, stop: Any) -> None:
    """A replica process: open, say where (or why not), serve until ``stop`` (a pipe: anything or its end,
    which also comes when the driver dies), hand back the stats."""
    try:
        serving = _Serving(config)
    except Exception as exc:  # pickled as text: not every error class survives the trip
        out.put((index, False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
        return
    out.put((index, True, serving.endpoint))
    try:
        stop.poll(None)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the driver says what stopped
        pass
    out.put((index, True, serving.stop()))


class Replicas:
    """R servers started by ``start`` (or ``with``), their endpoints in ``endpoints``, ended by ``close``."""

    def __init__(self, config: ReplicaConfig, server: PolicyServerNodeConfig) -> None:
        self.config = config
        self.server = server
        self.endpoints: list[str] = []
        self.stats: list[dict[str, Any]] = []  # per replica, after close
        self._processes: list[Any] = []
        self._actors: list[Any] = []
        self._ray: Any = None
        self._owned = False
        self._out: Any = None
        self._stops: list[Any] = []  # per process, the sending end of its stop pipe

    def __enter__(self) -> Replicas:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> list[str]:
        try:
            self.endpoints = self._start_ray() if self.config.engine == "ray" else self._start_local()
        except BaseException:
            self.close()
            raise
        return self.endpoints

    def _start_local(self) -> list[str]:
        context = multiprocessing.get_context("spawn")  # no torch thread pool forked mid-use
        # not a multiprocessing.Event: its set() waits for every waiter to wake, forever for one that was killed
        self._out = context.Queue()
        for i in range(self.config.replicas):
            config = replace(self.server, endpoint=self.config.endpoint(i, LOOPBACK_IP))
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_local_replica, args=(config, i, self._out, receive),
                                      name=f"policy-server{i}", daemon=True)
            process.start()
            receive.close()
            self._processes.append(process)
            self._stops.append(send)
        endpoints: dict[int, str] = {}
        while len(endpoints) < self.config.replicas:
            try:
                index, ok, value = self._out.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                raise ReplicaError(f"policy-server replicas did not start within {START_TIMEOUT_S:.0f} s") from None
            if not ok:
                raise ConfigError(f"policy-server replica {index}: {value}")
            endpoints[index] = value
        return [endpoints[i] for i in range(self.config.replicas)]

    def _start_ray(self) -> list[str]:
        self._ray = ray = import_ray(private=not self.config.address)
        self._owned = connect_ray(ray, self.config.address)
        gpus = 0.0
        if self.server.device.startswith("cuda"):
            if not ray.cluster_resources().get("GPU"):
                raise ConfigError(f"--device {self.server.device}: the Ray cluster has no GPU; use --device cpu "
                                  "or join a cluster with GPUs (--address)")
            gpus = cpu_share(ray, self.config.replicas, "GPU")  # replicas beyond the GPUs share them
        actor = ray.remote(num_cpus=cpu_share(ray, self.config.replicas), num_gpus=gpus)(_RayReplica)
        self._actors = [actor.remote() for _ in range(self.config.replicas)]
        opened = [a.open.remote(self.config, i, self.server) for i, a in enumerate(self._actors)]
        try:
            return list(ray.get(opened, timeout=START_TIMEOUT_S))
        except ray.exceptions.RayTaskError as exc:  # e.g. the port is in use on that node
            raise_cause(exc)
        except ray.exceptions.GetTimeoutError:
            raise ReplicaError(f"policy-server replicas did not start within {START_TIMEOUT_S:.0f} s: does the "
                               "cluster have the CPUs (and GPUs) for them? (`ray status`)") from None

    def check(self) -> None:
        """Raise ReplicaError, one line, naming each replica that is no longer serving."""
        gone: list[str] = []
        if self._processes:
            gone = [f"replica {i} ({self.endpoints[i]}) exited with code {p.exitcode}"
                    for i, p in enumerate(self._processes) if not p.is_alive()]
        elif self._actors:
            ray = self._ray
            for i, actor in enumerate(self._actors):
                try:
                    why = ray.get(actor.alive.remote(), timeout=STOP_TIMEOUT_S)
                except Exception as exc:  # the actor (or its node) is gone
                    why = type(exc).__name__
                if why:
                    gone.append(f"replica {i} ({self.endpoints[i]}): {why}")
        if gone:
            raise ReplicaError(f"policy server: {'; '.join(gone)}; its robots get no chunks: restart the servers")

    def close(self) -> None:
        """Stop every replica (stats into ``stats``), kill what does not stop, shut down a private Ray."""
        try:
            if self._processes:
                self._close_local()
            if self._actors:
                self._close_ray()
        finally:
            if self._owned:
                self._ray.shutdown()
                self._owned = False

    def _close_local(self) -> None:
        for send in self._stops:
            send.close()  # the replica's poll sees the end
        stats: dict[int, dict[str, Any]] = {}
        alive = sum(p.is_alive() for p in self._processes)
        try:
            while len(stats) < alive:
                index, _, value = self._out.get(timeout=STOP_TIMEOUT_S)
                if isinstance(value, dict):
                    stats[index] = value
        except queue.Empty:
            pass
        for process in self._processes:
            process.join(timeout=STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
        self.stats = [stats[i] for i in sorted(stats)]
        self._processes = []

    def _close_ray(self) -> None:
        ray = self._ray
        for actor in self._actors:
            try:
                self.stats.append(ray.get(actor.stop.remote(), timeout=STOP_TIMEOUT_S))
            except Exception:  # a dead replica has no stats to give; the others still do
                pass
            ray.kill(actor)
        self._actors = []
