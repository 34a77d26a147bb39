"""The policy server: one nano VLA for many robots, one batched forward per batch of requests.

    nodes:
      policy:
        class: policies.vla.server:PolicyServerNode
        params: {endpoint: "tcp://127.0.0.1:7700", decoding: consistency, window_ms: 2}

Robots connect ZeroMQ DEALER sockets to the server's ROUTER (docs/protocol.md section 11): a request is
``[RobotState, Frame]``, the reply one ``ActionChunk`` (the whole chunk; the robot's side cuts it to its
schedule, ``policies.vla.fleet``). The requests that arrive within ``window_ms`` of the first one, or as soon
as every robot the server knows has asked, run as one batch (``policies.vla.batch.BatchPolicy``: batched
ViT, prefill and Jacobi with per-row exit). A robot's memory (its previous chunk, its episode) is kept
under its routing id, so robots that share an arm's name are still told apart.

Never blocked by one robot: the window is bounded, a robot that stops asking is just not in the next batch
(and forgotten after ``forget_s``), replies never wait on a slow reader (non-blocking sends, dropped for
a peer that is gone), and a request that is not ``[RobotState, Frame]`` of this protocol version, or whose
frame or state the policy cannot read, is dropped and counted (``bad.requests``) before it can reach a
batch. A second request from a robot whose first is still waiting replaces it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from agentrt import runfiles
from agentrt.endpoint_lock import EndpointLock
from agentrt.errors import ConfigError, ProtocolError
from agentrt.messages import ActionChunk, Frame, RobotState, now_ns
from agentrt.node import Node
from agentrt.pixels import to_rgb
from agentrt.wire import decode, encode
from policies.vla.batch import BatchPolicy, BatchRequest
from policies.vla.model import robot_state

__all__ = ["PolicyServerNodeConfig", "PolicyServer", "PolicyServerNode", "ServerStats"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16 << 20  # a request's frame: 16 MiB is a 2k RGB image; anything larger is refused
TRAINED_DT_MS = 50.0  # a reply's dt_ms: the rate the weights were trained at (20 Hz); the robot side sets its own


@dataclass
class PolicyServerNodeConfig:
    endpoint: str = "tcp://127.0.0.1:7700"  # the ROUTER binds here (ipc:// on one host, tcp:// across hosts)
    window_ms: float = 2.0  # batch the requests arriving this long after the first (<= 2 ms keeps latency low)
    max_batch: int = 32  # at most this many rows per forward
    forget_s: float = 10.0  # a robot silent this long is forgotten (memory freed, no longer waited for)
    decoding: str = "consistency"  # ar | jacobi | consistency (policies.vla.policy.DECODINGS)
    weights: str = ""  # empty: the shipped weights for the decoding mode
    threads: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "float32"
    stats_path: str = ""  # non-empty: write the batch sizes and latencies here as JSON when the server closes

    def __post_init__(self) -> None:
        if not 0 <= self.window_ms <= 100 or self.max_batch < 1 or self.forget_s <= 0:
            raise ConfigError(f"PolicyServerNodeConfig: expected 0 <= window_ms <= 100, max_batch >= 1, forget_s > 0, "
                              f"got {self.window_ms}, {self.max_batch}, {self.forget_s}")
        if not self.endpoint.startswith(("tcp://", "ipc://")):
            raise ConfigError(f"PolicyServerNodeConfig.endpoint: expected tcp://HOST:PORT or ipc://PATH, got {self.endpoint!r}")


@dataclass
class ServerStats:
    batches: Counter[int] = field(default_factory=Counter)  # rows per forward -> how many forwards
    served: Counter[str] = field(default_factory=Counter)  # robot id -> chunks sent
    latencies_ms: list[float] = field(default_factory=list)  # capture -> reply sent (one host: one clock)
    bad: Counter[str] = field(default_factory=Counter)  # why requests were dropped -> how many
    replaced: int = 0  # requests superseded by the same robot's newer one before their batch

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {"batches": {str(k): v for k, v in sorted(self.batches.items())}, "served": dict(self.served),
                "bad": dict(self.bad), "replaced": self.replaced, "chunks": sum(self.served.values()),
                "latency_p50_ms": float(np.percentile(lat, 50)) if lat else None,
                "latency_p99_ms": float(np.percentile(lat, 99)) if lat else None}


@dataclass
class _Pending:
    robot: bytes
    state: RobotState
    frame: Frame
    image: np.ndarray  # RGB uint8, checked readable before the request may join a batch
    vector: np.ndarray  # the policy's state vector


class PolicyServer:
    """The ROUTER loop without the node around it (the bench runs it in a process of its own)."""

    def __init__(self, config: PolicyServerNodeConfig, batch: BatchPolicy | None = None) -> None:
        self.config = config
        if batch is None:
            from policies.vla.policy import NanoPolicy, PolicyConfig

            batch = BatchPolicy(NanoPolicy(PolicyConfig(weights=config.weights, decoding=config.decoding,
                                                        threads=config.threads, device=config.device,
                                                        dtype=config.dtype)))
        self.batch = batch
        self.stats = ServerStats()
        self._episodes: dict[bytes, int] = {}
        self._seen: dict[bytes, float] = {}  # robot -> monotonic time of its last request
        self._pending: dict[bytes, _Pending] = {}
        self._warned: set[str] = set()
        self._seq = 0
        self._sock: zmq.Socket | None = None
        self._lock: EndpointLock | None = None
        self._socket_file: runfiles.SocketFile | None = None
        self.endpoint = config.endpoint  # once open: where it is bound

    def open(self) -> None:
        endpoint = self.config.endpoint
        if endpoint.startswith("ipc://"):
            Path(endpoint[len("ipc://"):]).parent.mkdir(parents=True, exist_ok=True)
        self._lock = EndpointLock.acquire(endpoint)  # ipc: one binder per name (agentrt.endpoint_lock)
        sock: zmq.Socket = zmq.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 64)  # per robot: a robot that stops reading loses replies, never stalls others
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close()
            self.close()
            raise ConfigError(f"policy server: cannot bind {endpoint} ({exc}); is another server running there? "
                              f"pick another endpoint") from None
        self._sock = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)  # tcp://HOST:* -> the port it got
        self._socket_file = runfiles.bound_socket(endpoint)  # ZeroMQ leaves an ipc socket file: we remove it
        # first-call costs now, not in the first robots' batches: one row (act_batch's single-row path) and two
        # (the batched prefill and decoders)
        size = self.batch.policy.model.config.image_size
        warm = [BatchRequest(f"warm-up{i}", np.zeros((size, size, 3), np.uint8), np.zeros(4, np.float32), "warm up")
                for i in range(2)]
        for rows in (warm[:1], warm):
            self.batch.act_batch(rows)
        for request in warm:
            self.batch.reset(request.robot)

    @property
    def robots(self) -> list[str]:
        """The robots heard from within ``forget_s``."""
        return [r.decode(errors="replace") for r in self._seen]

    def serve(self, timeout_ms: float) -> int:
        """Wait up to ``timeout_ms`` for a request, gather its batch, answer it; -> rows answered (0: none came)."""
        sock = self._sock
        assert sock is not None, "open() first"
        self._expire()
        if not self._pending and not sock.poll(max(0, int(timeout_ms))):
            return 0
        deadline = time.monotonic() + self.config.window_ms / 1e3
        while True:
            self._drain()
            # every robot known has asked (or the batch is full): no one else is coming within the window
            if len(self._pending) >= min(len(self._seen), self.config.max_batch) and self._pending:
                break
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(max(1, math.ceil(left * 1e3))):
                self._drain()
                break
        return self._answer()

    def _drain(self) -> None:
        """Take every request waiting on the socket, without blocking."""
        assert self._sock is not None
        while True:
            try:
                parts = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._take(parts)

    def _take(self, parts: list[Any]) -> None:
        robot = bytes(parts[0].buffer)
        try:
            if len(parts) != 3:
                raise ProtocolError(f"a request is [RobotState, Frame], got {len(parts) - 1} part(s)")
            state, frame = decode(parts[1]), decode(parts[2])
            if not isinstance(state, RobotState) or not isinstance(frame, Frame):
                raise ProtocolError(f"a request is [RobotState, Frame], got [{type(state).__name__}, "
                                    f"{type(frame).__name__}]")
            image = to_rgb(frame)
            vector = robot_state(np.asarray(state.ee_pose), state.gripper)
            if vector.shape != (4,) or not np.isfinite(vector).all():
                raise ProtocolError(f"RobotState.ee_pose: expected xyz + quaternion, got {np.shape(state.ee_pose)}")
        except (ProtocolError, ValueError, IndexError) as exc:
            self._bad(robot, "requests", str(exc))
            return
        if state.robot != self.batch.policy.robot:
            self._bad(robot, "other_robot", f"the weights drive the {self.batch.policy.robot}, the request is "
                      f"from a '{state.robot}': refused")
            return
        instruction = state.instruction
        if not instruction:
            self._bad(robot, "no_instruction", "RobotState.instruction is empty: nothing to act on")
            return
        self._seen[robot] = time.monotonic()
        if self._episodes.get(robot) != state.episode:
            self._episodes[robot] = state.episode
            self.batch.reset(robot.decode(errors="replace"))
        if robot in self._pending:
            self.stats.replaced += 1
        self._pending[robot] = _Pending(robot, state, frame, image, vector)

    def _bad(self, robot: bytes, what: str, why: str) -> None:
        self.stats.bad[what] += 1
        name = robot.decode(errors="replace")
        if f"{name}:{what}" not in self._warned:  # once per robot and kind: a broken robot must not flood the log
            self._warned.add(f"{name}:{what}")
            log.warning("robot '%s': request dropped: %s", name, why)

    def _answer(self) -> int:
        if not self._pending:
            return 0
        rows = list(self._pending.values())[: self.config.max_batch]
        for row in rows:
            del self._pending[row.robot]
        requests = [BatchRequest(r.robot.decode(errors="replace"), r.image, r.vector, r.state.instruction)
                    for r in rows]
        chunks, _ = self.batch.act_batch(requests)
        self.stats.batches[len(rows)] += 1
        for row, chunk in zip(rows, chunks, strict=True):
            reply = ActionChunk(row.state.robot, self._seq, row.frame.seq, row.frame.t_capture_ns, "ee_delta",
                                chunk, TRAINED_DT_MS, t_sent_ns=now_ns(), hops=list(row.frame.hops))
            self._seq += 1
            try:
                assert self._sock is not None
                self._sock.send_multipart([row.robot, encode(reply)], zmq.NOBLOCK)
            except zmq.Again:  # the robot's queue is full: it stopped reading; the others go on
                self.stats.bad["unsent"] += 1
                continue
            self.stats.served[row.robot.decode(errors="replace")] += 1
            self.stats.latencies_ms.append((now_ns() - row.frame.t_capture_ns) / 1e6)
        return len(rows)

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.config.forget_s
        for robot in [r for r, t in self._seen.items() if t < cutoff]:
            del self._seen[robot]
            self._episodes.pop(robot, None)
            self.batch.reset(robot.decode(errors="replace"))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        runfiles.remove_socket(self._socket_file)  # the socket file before the lock (as agentrt.transport)
        self._socket_file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self.config.stats_path:
            import json

            with open(self.config.stats_path, "w") as f:
                json.dump(self.stats.as_dict(), f)


class PolicyServerNode(Node):
    """The server as a launch-file node: no wired inputs or outputs, its own ROUTER (docs/protocol.md 11)."""

    Config = PolicyServerNodeConfig

    def setup(self) -> None:
        self.server = PolicyServer(self.config)
        self.server.open()
        c = self.config
        self.log.info("policy server on %s: %s decoding, batching window %.1f ms", c.endpoint, c.decoding, c.window_ms)

    def run(self) -> None:
        while not self.stop_requested:
            self.beat()  # the supervisor's liveness check: the loop waits at most 50 ms per turn
            self.server.serve(timeout_ms=50)
            stats, counters = self.server.stats, self.stats.counters
            counters["chunks"] = sum(stats.served.values())
            counters["batches"] = sum(stats.batches.values())
            counters["robots"] = len(self.server.robots)
            counters.update({f"bad.{what}": n for what, n in stats.bad.items()})

    def teardown(self) -> None:
        stats = self.server.stats
        if stats.batches:
            self.log.info("served %d chunks to %d robots in %d batches (sizes %s)", sum(stats.served.values()),
                          len(stats.served), sum(stats.batches.values()), dict(sorted(stats.batches.items())))
        self.server.close()
