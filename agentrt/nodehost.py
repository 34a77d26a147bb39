"""One node in its own process: ``python -m agentrt.nodehost --node NAME`` with its plan in $AGENTRT_NODE (JSON).

The supervisor writes the plan (`plan_nodes`, here beside its reader); nobody runs this by hand. ``--node NAME`` is
there for people: `ps` shows it in the command line, and the process (and
thread) name is set to NAME (``prctl(PR_SET_NAME)``: `ps -o comm`, `top`, `pgrep`).
The plan::

    {"name": "policy", "class": "agentrt.nodes.echo:EchoNode", "params": {...},
     "rate_hz": null, "arm_after": ["frames"], "trace": null,
     "inputs":  {"frames":  {"address": "ipc://.../camera.frames", "lossless": false, "curve": false}},
     "outputs": {"actions": {"address": "ipc://.../policy.actions", "lossless": true, "curve": false}},
     "control": "ipc://.../control", "keys_dir": null, "heartbeat_ms": 200, "telemetry_ms": 500,
     "error_file": ".../policy.error"}

It reports over the control socket (a PUSH to the supervisor's PULL): Heartbeat
"starting" at launch, "ready" after ``setup()``, "running" once armed (at once
without ``arm_after``), then every ``heartbeat_ms`` from the event loop (so a
hung loop stops heartbeats and the supervisor restarts it); Telemetry counters
every ``telemetry_ms`` and one Telemetry per latency trace. SIGTERM / SIGINT
request a stop (the node gets a `Stop` event); during start-up (before ready)
they end it at once. SIGUSR1 arms the node.
Exit status: 0 stopped or finished, 1 the node raised (a restart may help),
2 it cannot start or go on (a bad plan, or an error that `agentrt.errors.is_permanent`
says a retry meets again: bad config, missing file, port in use, bad weights,
missing keys, at start-up or later, e.g. weights trained on another robot than
the one on the wire); its one-line message is then in the plan's ``error_file``.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import math
import os
import re
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import zmq

from agentrt import wire
from agentrt.errors import AgentRTError, ConfigError, TransportError, is_permanent
from agentrt.launch import build_config, resolve_class
from agentrt.messages import Heartbeat, Message, Telemetry, now_ns
from agentrt.node import Node
from agentrt.transport import Publisher, Subscriber

__all__ = ["NodeHost", "main", "plan_nodes", "PLAN_ENV", "EXIT_FAILED", "EXIT_CANNOT_START"]

PLAN_ENV = "AGENTRT_NODE"
EXIT_FAILED = 1  # the node raised: the launch file's restart policy decides
EXIT_CANNOT_START = 2  # a retry would fail the same way: the supervisor does not restart it
PR_SET_NAME = 15
log = logging.getLogger("agentrt.nodehost")
AWAIT_SUBSCRIBERS_S = 5.0  # how long a node started after its consumers waits for them to connect

if TYPE_CHECKING:
    from agentrt.curve import CurveClient, CurveServer
    from agentrt.launch import LaunchSpec


def plan_nodes(spec: LaunchSpec, host: str, directory: Path, control: str, heartbeat_ms: int = 200,
               telemetry_ms: int = 500) -> dict[str, dict[str, Any]]:
    """The plan (JSON-able, the module docstring's format) of every node placed on ``host``: the supervisor
    writes it, `NodeHost` reads it, so its keys live in this one module. Each wire gets its address here:
    ipc in ``directory``, tcp + CURVE between hosts, or the launch file's ``external:`` endpoint."""
    addresses: dict[tuple[str, str], dict[str, Any]] = {}
    for src, output in spec.all_outputs():
        lossless = spec.output_port(src, output).lossless
        if spec.crosses_hosts(src, output):
            producer = spec.nodes[src].host
            if producer not in spec.hosts:
                raise ConfigError(f"{spec.where(src)}: '{src}.{output}' goes to another host, so host "
                                  f"'{producer}' needs an address under hosts:")
            address = spec.hosts[producer]
            port = spec.host_port(src, output)
            addresses[(src, output)] = {"bind": f"tcp://{address}:{port}", "connect": f"tcp://{address}:{port}",
                                         "lossless": lossless, "curve": True}
        elif (src, output) in spec.external:  # bound where outside programs look; nodes here read it there too
            bind = spec.external[(src, output)]
            connect = re.sub(r"^tcp://(\*|0\.0\.0\.0):", "tcp://127.0.0.1:", bind)
            addresses[(src, output)] = {"bind": bind, "connect": connect, "lossless": lossless, "curve": False}
        else:
            ipc = f"ipc://{directory / f'{src}.{output}'}"
            addresses[(src, output)] = {"bind": ipc, "connect": ipc, "lossless": lossless, "curve": False}
    plans: dict[str, dict[str, Any]] = {}
    for node in spec.nodes.values():
        if node.host != host:
            continue
        outputs = {o: {"address": addresses[(node.name, o)]["bind"], "lossless": addresses[(node.name, o)]["lossless"],
                       "curve": addresses[(node.name, o)]["curve"],
                       "wired": bool(spec.lossless_readers(node.name, o)) or (node.name, o) in spec.external,
                       "copy": _copy_address(spec, directory, node.name, o),
                       # consumers started before this node (its start_after): their first message must reach them
                       "await_subscribers": sum(1 for n, _ in spec.consumers(node.name, o) if n in node.start_after)}
                   for o in node.cls.outputs}
        inputs = {i: {"address": addresses[src]["connect"], "lossless": addresses[src]["lossless"],
                      "curve": addresses[src]["curve"]} for i, src in node.inputs.items()}
        for i, (src, output) in node.inputs.items():
            if (node.name, i) in spec.copy_readers(src, output):  # latest-only, from the lossless output's copy
                inputs[i] = {"address": _copy_address(spec, directory, src, output), "lossless": False, "curve": False}
        plans[node.name] = {
            "name": node.name, "class": node.class_path, "params": node.params, "rate_hz": node.rate_hz,
            "arm_after": list(node.arm_after), "trace": node.trace, "inputs": inputs, "outputs": outputs,
            "control": control, "keys_dir": str(spec.keys_dir) if spec.keys_dir else None,
            "heartbeat_ms": heartbeat_ms, "telemetry_ms": telemetry_ms, "supervisor_pid": os.getpid(),
            "error_file": str(directory / f"{node.name}.error"),
        }
    return plans


def _copy_address(spec: LaunchSpec, directory: Path, node: str, output: str) -> str | None:
    """Where a lossless output also publishes a latest-only copy for latest-only readers (None: none read it)."""
    return f"ipc://{directory / f'{node}.{output}.latest'}" if spec.copy_readers(node, output) else None


class NodeHost:
    """The process-side `NodeIO`: transport sockets, the control socket, signals.

    What it counts goes out with every Telemetry (docs/runtime.md has the list):
    ``in.<input>.received|skipped|gaps|bad|torn|wrong_kind|refused``,
    ``out.<output>.sent|dropped|refused`` and the node's own ``stats.counters``.
    A message of another kind than its input's port declares is dropped and
    counted as ``wrong_kind``. An input whose server refuses this host's CURVE
    key never receives anything (ZeroMQ does not retry), so the node is stopped
    and the process exits 1 with one line saying which server and what to do.
    """

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.name: str = plan["name"]
        self.node: Node | None = None
        self._stop = ""
        self._armed = not plan.get("arm_after")
        self._seq = 0
        self._state = "starting"
        self._heartbeat_ns = int(plan.get("heartbeat_ms", 200)) * 1_000_000
        self._telemetry_ns = int(plan.get("telemetry_ms", 500)) * 1_000_000
        self._next_heartbeat = 0
        self._next_telemetry = 0
        self._subs: dict[str, Subscriber] = {}
        self._pubs: dict[str, Publisher] = {}
        self._unwired: dict[str, int] = {}
        self._copies: dict[str, Publisher] = {}  # output -> its latest-only copy (docs/runtime.md)
        self._servers: dict[str, CurveServer] = {}  # output -> its CURVE server (refusals)
        self._clients: dict[str, CurveClient] = {}  # input -> its CURVE client (refused by its server?)
        self._refused: dict[str, int] = {}  # input -> refusals heard
        self._wrong_kind: dict[str, int] = {}  # input -> messages of another kind than the port declares
        self.failure = ""  # why the host stopped the node (an input refused), or ""
        self._poller = zmq.Poller()
        self._by_socket: dict[zmq.Socket, tuple[str, Subscriber]] = {}
        self._control: zmq.Socket = zmq.Context.instance().socket(zmq.PUSH)
        self._control.setsockopt(zmq.LINGER, 500)
        self._control.setsockopt(zmq.SNDHWM, 10000)
        self._control.connect(plan["control"])

    def open(self) -> None:
        keys = str(self.plan.get("keys_dir") or "keys")
        for name, wire_plan in self.plan["outputs"].items():
            if wire_plan.get("copy"):  # latest-only readers of a lossless output: they never hold the sender up
                self._copies[name] = Publisher(wire_plan["copy"], lossless=False)
            if not wire_plan.get("wired", True):
                continue  # nobody listens: a lossless PUSH would block on every send
            server = None
            if wire_plan.get("curve"):
                from agentrt.curve import CurveServer
                server = self._servers[name] = CurveServer(keys, name=f"output '{name}' ({wire_plan['address']})")
            self._pubs[name] = Publisher(wire_plan["address"], lossless=wire_plan["lossless"], socket_setup=server)
            waited = wire_plan.get("await_subscribers", 0)
            if waited and not wire_plan["lossless"]:
                # start_after promises the consumers miss nothing: wait (bounded) until they are connected
                got = self._pubs[name].wait_for_subscribers(waited, AWAIT_SUBSCRIBERS_S)
                if got < waited:
                    log.warning("output '%s': %d of %d consumers connected after %.0f s; sending anyway",
                                name, got, waited, AWAIT_SUBSCRIBERS_S)
        for name, wire_plan in self.plan["inputs"].items():
            client = None
            if wire_plan.get("curve"):
                from agentrt.curve import CurveClient
                client = self._clients[name] = CurveClient(keys, client_key=wire_plan.get("client_key"), watch=True)
            sub = Subscriber(wire_plan["address"], lossless=wire_plan["lossless"], socket_setup=client)
            self._subs[name] = sub
            self._poller.register(sub.socket, zmq.POLLIN)
            self._by_socket[sub.socket] = (name, sub)

    # ---- NodeIO -------------------------------------------------------------------------------

    def clock_ns(self) -> int:
        return now_ns()

    def poll(self, timeout_ns: int) -> list[tuple[str, Message]]:
        self.beat()  # waiting for input is being alive, whoever polls
        timeout_ms = max(0, timeout_ns) / 1e6
        if not self._subs:
            if timeout_ms > 0:
                time.sleep(timeout_ms / 1e3)
            return []
        ready = dict(self._poller.poll(math.ceil(timeout_ms)))
        out: list[tuple[str, Message]] = []
        for socket in ready:
            name, sub = self._by_socket[socket]
            port = type(self.node).inputs.get(name) if self.node is not None else None
            expected = port.message if port is not None else ""
            while True:  # drain what is there without waiting: lossless inputs may hold several
                message = sub.recv(timeout_ms=0)
                if message is None:
                    break
                if expected and type(message).__name__ != expected:
                    self._count_wrong_kind(name, expected, message)
                    continue
                out.append((name, message))
                if not sub.lossless:
                    break
        return out

    def _count_wrong_kind(self, name: str, expected: str, message: Message) -> None:
        count = self._wrong_kind[name] = self._wrong_kind.get(name, 0) + 1
        if count == 1 or count % 100 == 0:
            log.warning("input '%s' takes %s messages, got a %s: dropped (%d so far)", name, expected,
                        type(message).__name__, count)

    def _check_refusals(self) -> None:
        """Stop the node, once, if the server of a CURVE input refused us: that input would stay silent."""
        for name, client in self._clients.items():
            for line in client.refusals():
                self._refused[name] = self._refused.get(name, 0) + 1
                if not self.failure:
                    self.failure = f"input '{name}': {line}"
                    log.error("%s", self.failure)
                    self._stop = self._stop or "an input was refused"

    def send(self, output: str, message: Message) -> None:
        copy = self._copies.get(output)
        if copy is not None:
            copy.send(message)  # latest-only: never waits
        pub = self._pubs.get(output)
        if pub is None:  # an output nothing is wired to (or read by latest-only copies only)
            self._unwired[output] = self._unwired.get(output, 0) + 1
            return
        try:
            # a stop request ends the wait for a consumer at once: at shutdown the consumer may be gone
            # already, and waiting out the send timeout would outlast the supervisor's grace (SIGKILL)
            pub.send(message, give_up=lambda: bool(self._stop))
        except TransportError as exc:  # lossless, and the consumer is gone (restarting?): keep running
            pub.stats.send_dropped += 1
            if pub.stats.send_dropped == 1 or pub.stats.send_dropped % 100 == 0:
                log.warning("%s (%d dropped so far)", exc, pub.stats.send_dropped)

    def stop_reason(self) -> str:
        return self._stop  # a getter: no heartbeat here (`beat` is explicit)

    def armed(self) -> bool:
        return self._armed

    def report(self, state: str) -> None:
        self._state = state
        self._control_send(Heartbeat(self.name, self._next_seq(), now_ns(), state, os.getpid()))

    # ---- signals and reports ------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if reason.startswith("SIG") and (self._stop or self._state == "starting"):
            raise KeyboardInterrupt  # a second signal, or one during start-up (nothing to finish): stop now
        self._stop = reason

    def arm(self) -> None:
        self._armed = True

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _control_send(self, message: Message) -> None:
        try:
            self._control.send(wire.encode(message), zmq.NOBLOCK, copy=False)
        except zmq.Again:
            pass  # the supervisor is gone or stuck: never block the node for it

    def beat(self) -> None:
        """Send a heartbeat (and telemetry) if one is due; cheap to call every loop iteration."""
        now = now_ns()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self._heartbeat_ns
            self._check_refusals()
            state = self._state
            if state == "ready" and self._armed:
                state = self._state = "running"
            self._control_send(Heartbeat(self.name, self._next_seq(), now, state, os.getpid()))
        if self.node is not None and now >= self._next_telemetry:
            self._next_telemetry = now + self._telemetry_ns
            self.flush_telemetry()

    def flush_telemetry(self) -> None:
        if self.node is None:
            return
        stats = self.node.stats
        metrics: dict[str, float] = {
            "ticks": stats.ticks, "over_budget": stats.over_budget, "missed_ticks": stats.missed_ticks,
            "target_hz": self.node.rate_hz, "held_unarmed": stats.held_unarmed, "pid": os.getpid(),
        }
        for name, sub in self._subs.items():
            metrics[f"in.{name}.received"] = stats.received.get(name, 0)
            metrics[f"in.{name}.skipped"] = sub.stats.skipped
            metrics[f"in.{name}.gaps"] = sub.stats.gaps
            metrics[f"in.{name}.bad"] = sub.stats.bad
            metrics[f"in.{name}.torn"] = sub.stats.torn
            metrics[f"in.{name}.wrong_kind"] = self._wrong_kind.get(name, 0)
            if name in self._clients:
                metrics[f"in.{name}.refused"] = self._refused.get(name, 0)
        for name, server in self._servers.items():
            metrics[f"out.{name}.refused"] = server.refused
        for name, pub in self._pubs.items():
            metrics[f"out.{name}.sent"] = pub.stats.sent
            metrics[f"out.{name}.dropped"] = pub.stats.send_dropped
        metrics.update(stats.counters)
        now = now_ns()
        self._control_send(Telemetry(self.name, self._next_seq(), now, metrics))
        while stats.traces:
            trace = stats.traces.popleft()[:200]
            points = {f"{i}:{name}"[:128]: float(t) for i, (name, t) in enumerate(trace)}
            self._control_send(Telemetry(self.name, self._next_seq(), now, {"trace": 1.0, **points}))

    def close(self) -> None:
        for sub in self._subs.values():
            sub.close()
        for pub in [*self._pubs.values(), *self._copies.values()]:
            pub.close()
        for client in self._clients.values():
            client.close()  # its monitors, after the sockets they watch
        self._control.close(linger=500)


def _stop_with_parent(host: NodeHost, parent_pid: int) -> None:
    """If the supervisor dies (even by SIGKILL), get SIGTERM: no node outlives it (Linux)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            log.debug("prctl(PR_SET_PDEATHSIG) unavailable")
    if parent_pid and os.getppid() != parent_pid:
        host.request_stop("supervisor gone")


def _set_process_name(name: str) -> None:
    """Name this process after its node (Linux: `ps -o comm`, `top`, `pgrep`; 15 bytes at most)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
        except (OSError, AttributeError):
            log.debug("prctl(PR_SET_NAME) unavailable")


def _cannot_start(host: NodeHost, exc: BaseException, *, started: bool = False) -> int:
    """An error a retry meets again (at start-up, or ``started`` and running): one line, to the log and
    to the supervisor's error file."""
    message = str(exc) if isinstance(exc, AgentRTError) else f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, AgentRTError):  # a node's own code: its traceback helps whoever wrote it
        log.error("node raised:\n%s", traceback.format_exc().rstrip())
    log.error("%s: %s", "cannot go on" if started else "cannot start", message)
    error_file = host.plan.get("error_file")
    if error_file:
        try:
            with open(error_file, "w") as out:
                out.write(" ".join(message.split()))
        except OSError as write_error:
            log.debug("cannot write %s: %s", error_file, write_error)
    host.report("failed")
    return EXIT_CANNOT_START


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        plan = json.loads(os.environ[PLAN_ENV])
    except (KeyError, json.JSONDecodeError) as exc:
        print(f"agentrt.nodehost: no valid plan in ${PLAN_ENV} ({exc}); it is started by `agentrt run`",
              file=sys.stderr)
        return EXIT_CANNOT_START
    _set_process_name(str(plan.get("name", "")))
    host = NodeHost(plan)

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        host.request_stop(signal.Signals(signum).name)

    def on_arm(_signum: int, _frame: FrameType | None) -> None:
        host.arm()

    node: Node | None = None
    try:
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGUSR1, on_arm)
        _stop_with_parent(host, int(plan.get("supervisor_pid", 0)))
        host.report("starting")
        cls = resolve_class(plan["class"])
        config = build_config(cls, plan.get("params") or {})
        node = cls(config, name=host.name, io=host, rate_hz=plan.get("rate_hz"),
                   arm_after=tuple(plan["arm_after"]) if plan.get("arm_after") is not None else None,
                   trace=plan.get("trace"))
        host.open()
        node.setup()
        gc.collect()
        gc.freeze()  # what setup loaded (a model) is never scanned again: shorter GC pauses in the loop
        host.node = node
        host.report("ready")
        node.run()
        host.flush_telemetry()
        if host.failure:
            host.report("failed")
            return 1
        host.report("stopping")
        return 0
    except KeyboardInterrupt:
        host.report("stopping")
        return 0
    except Exception as exc:
        if is_permanent(exc):  # at start-up or later (the robot on the wire is not the weights'): never retried
            return _cannot_start(host, exc, started=host.node is not None)
        if isinstance(exc, AgentRTError):
            log.error("%s", exc)
        else:
            log.error("node raised:\n%s", traceback.format_exc().rstrip())
        host.report("failed")
        return EXIT_FAILED
    finally:
        if node is not None:
            try:
                node.teardown()
            except Exception:
                log.exception("teardown failed")
        host.close()


if __name__ == "__main__":
    sys.exit(main())
