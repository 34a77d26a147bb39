"""The supervisor: one process per node, restarts, readiness gating, heartbeats, clean shutdown.

    spec = load_launch("launch/pipeline_demo.yaml")
    supervisor = Supervisor(spec)
    code = supervisor.run(duration_s=10)       # 0 = ran and stopped cleanly, 1 = a node failed for good
    print(supervisor.failure)                  # one line saying which node and why, or ""

Each node runs as ``python -m agentrt.nodehost --node NAME`` in its own session
(process group), its plan in $AGENTRT_NODE; its stdout and stderr come back one
line at a time, prefixed ``[name]``. Restart policies: ``never``, ``on-failure``
(exit status != 0, killed, or hung), ``always``; the delay doubles from
``backoff_s`` up to ``backoff_max_s``; past ``max_restarts`` the run ends with
one line naming the node, its last exit and its last output (the count starts
again after a node stays up ``restart_reset_s``). A node that cannot start or
go on (an error a retry meets again, at start-up or later: bad config, missing
file, port in use, bad weights, missing keys, another robot than its weights')
is not restarted: the run ends at once with its message. A run that ends (duration, ``ends_run``) while a node is still failing
or never became ready is a failure too, naming that node. A node that sends no
heartbeat for ``heartbeat_timeout_s`` after it is ready is killed and treated as
failed. A node with ``arm_after`` is armed (SIGUSR1) once the nodes feeding those
inputs are ready; until then it drops those inputs. A node with ``start_after`` is
started only once those nodes are ready (a camera after its recorder: no frame
goes out before the recorder listens). Stop (``request_stop``,
Ctrl-C or SIGTERM in the CLI): SIGTERM to every group, then SIGKILL after
``grace_s``; every process is reaped before ``run`` returns.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import zmq

from agentrt import runfiles, wire
from agentrt.errors import ConfigError, ProtocolError
from agentrt.launch import LOCAL_HOST, LaunchSpec, NodeSpec, check_launch
from agentrt.messages import Heartbeat, Telemetry, now_ns
from agentrt.nodehost import EXIT_CANNOT_START, PLAN_ENV, plan_nodes
from agentrt.telemetry import TelemetryCollector
from agentrt.transport import run_dir

__all__ = ["SupervisorConfig", "Supervisor"]

log = logging.getLogger(__name__)

READY_STATES = ("ready", "running")


@dataclass
class SupervisorConfig:
    grace_s: float = 1.5  # SIGTERM -> SIGKILL; the whole stop stays within 2 s
    heartbeat_ms: int = 200
    telemetry_ms: int = 500
    status_interval_s: float = 0.5
    restart_reset_s: float = 60.0  # a node up this long gets its restart count back

    def __post_init__(self) -> None:
        if not 0 < self.grace_s <= 10:
            raise ConfigError(f"grace_s must be in (0, 10], got {self.grace_s}")
        if self.heartbeat_ms < 10 or self.telemetry_ms < 10:
            raise ConfigError(f"heartbeat_ms and telemetry_ms must be >= 10, got {self.heartbeat_ms}, "
                              f"{self.telemetry_ms}")


@dataclass
class _Proc:
    spec: NodeSpec
    plan: dict[str, Any]
    popen: subprocess.Popen[bytes] | None = None
    state: str = "waiting"  # waiting | starting | ready | running | stopping | exited | failed | done
    started_ns: int = 0
    last_heartbeat_ns: int = 0
    attempts: int = 0
    next_start_ns: int = 0
    last_arm_ns: int = 0
    last_exit: str = ""  # how it last exited ("exit code 1", ...), for the end-of-run check
    failing: bool = False  # it last exited failed and has not been ready since
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    reader: threading.Thread | None = None
    pids: list[int] = field(default_factory=list)


class Supervisor:
    """Runs the nodes of ``spec`` placed on ``host`` (this host: "local")."""

    def __init__(self, spec: LaunchSpec, *, host: str = LOCAL_HOST, config: SupervisorConfig | None = None,
                 output: Callable[[str], None] | None = None, telemetry: TelemetryCollector | None = None,
                 status: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self.host = host
        self.config = config or SupervisorConfig()
        self.telemetry = telemetry or TelemetryCollector(spec.name)
        self.failure = ""
        self.shutdown_s = 0.0  # how long the last shutdown took, SIGTERM to every process reaped
        self._output = output or _print_line
        self._output_lock = threading.Lock()
        self._status = status
        self._stop = threading.Event()
        self._ended_by = ""  # what ended the run when no stop was requested: a duration, a node's ends_run
        if not any(n.host == host for n in spec.nodes.values()):
            raise ConfigError(f"{spec.path}: no node is placed on host '{host}' (hosts: "
                              f"{', '.join(sorted({n.host for n in spec.nodes.values()}))})")
        check_launch(spec, host)  # files the nodes here name exist: one line now, not a node failing at start
        # the run folder (sockets of every wire, the control socket) carries our pid: removed at shutdown,
        # and a killed supervisor's is swept by the next start, with the socket files dead streams left
        runfiles.sweep(run_dir())
        self._dir = runfiles.owned_dir(run_dir(), f"{spec.name[:20]}-")
        self._control_address = f"ipc://{self._dir / 'control'}"
        try:
            plans = plan_nodes(spec, host, self._dir, self._control_address, self.config.heartbeat_ms,
                               self.config.telemetry_ms)
        except ConfigError:
            runfiles.remove_dir(self._dir)
            raise
        self.procs = {name: _Proc(spec.nodes[name], plan) for name, plan in plans.items()}
        self._control: zmq.Socket | None = None

    # ---- public --------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask ``run`` to stop every node and return (safe from a signal handler or another thread)."""
        self._stop.set()

    def pids(self) -> dict[str, int]:
        """The current process id of each running node."""
        return {n: p.popen.pid for n, p in self.procs.items() if p.popen is not None and p.popen.poll() is None}

    def all_pids(self) -> list[int]:
        """Every process id this supervisor started, also those that exited."""
        return [pid for p in self.procs.values() for pid in p.pids]

    def run(self, duration_s: float | None = None) -> int:
        """Start the nodes, supervise until ``duration_s``, a stop request, or a failure; stop everything."""
        self._control = zmq.Context.instance().socket(zmq.PULL)
        self._control.setsockopt(zmq.LINGER, 0)
        self._control.bind(self._control_address)
        began_ns = now_ns()
        end_ns = began_ns + int(duration_s * 1e9) if duration_s else None
        next_status = 0
        try:
            for proc in self.procs.values():
                if self._may_start(proc):
                    self._start(proc)
            while not self._stop.is_set() and not self.failure:
                self._drain_control(50)
                now = now_ns()
                for proc in self.procs.values():
                    self._check(proc, now)
                if all(p.state == "done" for p in self.procs.values()):
                    log.info("every node finished")
                    break
                if end_ns is not None and now >= end_ns:
                    self._ended_by = f"the run ended after {duration_s:g} s"
                    break
                if self._status is not None and now >= next_status:
                    next_status = now + int(self.config.status_interval_s * 1e9)
                    self._status(self.telemetry.status_line())
            if not self.failure:
                self.failure = self._unhealthy((now_ns() - began_ns) / 1e9)
        finally:
            self.shutdown()
        if self.failure:
            log.error("%s", self.failure)
            return 1
        return 0

    def shutdown(self) -> None:
        """SIGTERM every node's group, SIGKILL what is left after ``grace_s``, reap all, close sockets."""
        began = now_ns()
        live = [p for p in self.procs.values() if p.popen is not None and p.popen.poll() is None]
        for proc in live:
            proc.state = "stopping"
            _signal_group(proc.popen, signal.SIGTERM)
        deadline = now_ns() + int(self.config.grace_s * 1e9)
        while any(p.popen.poll() is None for p in live if p.popen is not None) and now_ns() < deadline:
            self._drain_control(20)
        for proc in self.procs.values():
            if proc.popen is not None:
                if proc.popen.poll() is None:
                    log.warning("node '%s' did not stop within %.1f s: killing it", proc.spec.name,
                                self.config.grace_s)
                _signal_group(proc.popen, signal.SIGKILL)  # also any child the node left in its group
                proc.popen.wait()
                self.telemetry.on_state(proc.spec.name, "stopped")
            if proc.reader is not None:
                proc.reader.join(timeout=1.0)
        self.shutdown_s = (now_ns() - began) / 1e9
        if self._control is not None and not self._control.closed:  # None: run() never started
            self._drain_control(0)
            self._control.close(linger=0)
        runfiles.remove_dir(self._dir)

    # ---- internals -----------------------------------------------------------------------------

    def _start(self, proc: _Proc) -> None:
        env = dict(os.environ)
        env[PLAN_ENV] = json.dumps(proc.plan)
        env["PYTHONUNBUFFERED"] = "1"
        env["AGENTRT_RUN_DIR"] = str(self._dir)
        proc.popen = subprocess.Popen(  # --node NAME: so `ps` tells the nodes apart (the nodehost reads the plan)
            [sys.executable, "-m", "agentrt.nodehost", "--node", proc.spec.name], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        proc.pids.append(proc.popen.pid)
        proc.state = "starting"
        proc.started_ns = proc.last_heartbeat_ns = now_ns()
        proc.last_arm_ns = 0
        self.telemetry.on_state(proc.spec.name, "starting")
        assert proc.popen.stdout is not None
        proc.reader = threading.Thread(target=self._pump, args=(proc, proc.popen.stdout), daemon=True,
                                       name=f"output-{proc.spec.name}")
        proc.reader.start()
        log.debug("started node '%s' (pid %d)", proc.spec.name, proc.popen.pid)

    def _pump(self, proc: _Proc, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            proc.tail.append(line)
            with self._output_lock:
                self._output(f"[{proc.spec.name}] {line}")
        stream.close()

    def _drain_control(self, timeout_ms: int) -> None:
        assert self._control is not None
        if not self._control.poll(timeout_ms):
            return
        while True:
            try:
                raw = self._control.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                message = wire.decode(raw)
            except ProtocolError as exc:
                log.warning("dropped a malformed control message: %s", exc)
                continue
            if isinstance(message, Heartbeat):
                self._on_heartbeat(message)
            elif isinstance(message, Telemetry):
                self.telemetry.on_telemetry(message)

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        proc = self.procs.get(beat.node)
        if proc is None or proc.popen is None or beat.pid != proc.popen.pid:
            return  # from a process we already replaced
        proc.last_heartbeat_ns = now_ns()
        if proc.state in ("starting", "ready", "running") and beat.state in ("starting", *READY_STATES):
            if beat.state != proc.state:
                log.info("node '%s' is %s", proc.spec.name, beat.state)
                self.telemetry.on_state(proc.spec.name, beat.state)
            proc.state = beat.state
            proc.failing = proc.failing and beat.state == "starting"  # ready again: no longer failing

    def _upstream_ready(self, proc: _Proc) -> bool:
        for input_name in proc.spec.arm_after:
            source, _ = proc.spec.inputs[input_name]
            upstream = self.procs.get(source)
            if upstream is not None and upstream.state not in READY_STATES:
                return False  # a node on another host counts as ready: its own supervisor gates it
        return True

    def _unhealthy(self, ran_s: float) -> str:
        """At the end of a run: one line naming a node still failing, or never ready ("" if none).

        A node restarting after a failure counts however the run ended. A node still starting counts
        when the run ended by itself (duration, ``ends_run``), not when someone stopped it during start-up.
        """
        ended = self._ended_by or "the run was stopped"
        for proc in self.procs.values():
            if proc.failing and proc.state in ("waiting", "starting"):
                return (f"node '{proc.spec.name}' was still failing when {ended} (last: {proc.last_exit}; restart "
                        f"{proc.attempts}/{proc.spec.max_restarts}){_last_words(proc)}")
        if not self._ended_by:
            return ""
        for proc in self.procs.values():
            if proc.state == "starting":
                return (f"node '{proc.spec.name}' never became ready: {ended} ({ran_s:.1f} s) while it was still "
                        f"starting (ready_timeout_s = {proc.spec.ready_timeout_s:g}){_last_words(proc)}")
        return ""

    def _may_start(self, proc: _Proc) -> bool:
        """Every node in ``start_after`` is ready (or finished); one on another host counts as ready."""
        for name in proc.spec.start_after:
            other = self.procs.get(name)
            if other is not None and other.state not in (*READY_STATES, "done"):
                return False
        return True

    def _check(self, proc: _Proc, now: int) -> None:
        name = proc.spec.name
        if proc.popen is None:
            if proc.state == "waiting" and now >= proc.next_start_ns and self._may_start(proc):
                self._start(proc)
            return
        code = proc.popen.poll()
        if code == EXIT_CANNOT_START and proc.state != "stopping":
            self._cannot_start(proc)
            return
        if code is not None:
            self._on_exit(proc, f"exit code {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}",
                          failed=code != 0)
            return
        if proc.state == "starting" and now - proc.started_ns > proc.spec.ready_timeout_s * 1e9:
            _signal_group(proc.popen, signal.SIGKILL)
            proc.popen.wait()
            self._on_exit(proc, f"not ready within ready_timeout_s = {proc.spec.ready_timeout_s:g}", failed=True)
        elif proc.state in READY_STATES and now - proc.last_heartbeat_ns > proc.spec.heartbeat_timeout_s * 1e9:
            log.warning("node '%s' sent no heartbeat for %.1f s: killing it", name, proc.spec.heartbeat_timeout_s)
            _signal_group(proc.popen, signal.SIGKILL)
            proc.popen.wait()
            self._on_exit(proc, f"hung (no heartbeat for {proc.spec.heartbeat_timeout_s:g} s)", failed=True)
        elif proc.state == "ready" and proc.spec.arm_after and now - proc.last_arm_ns > 200_000_000:
            if self._upstream_ready(proc):
                proc.last_arm_ns = now
                _signal_pid(proc.popen, signal.SIGUSR1)

    def _cannot_start(self, proc: _Proc) -> None:
        """The node failed in a way a retry meets again (at start-up or later): end the run now, with its message."""
        spec = proc.spec
        started = proc.state != "starting"
        self._reap(proc)
        proc.state = "failed"
        self.telemetry.on_state(spec.name, "failed")
        error_file = Path(proc.plan["error_file"])
        try:
            message = error_file.read_text().strip()
            error_file.unlink()
        except OSError:
            message = ""
        why = f": {message}" if message else f" (exit code {EXIT_CANNOT_START}){_last_words(proc)}"
        self.failure = (f"node '{spec.name}' {'cannot go on' if started else 'cannot start'}{why} "
                        f"({self.spec.where(spec.name)}; not restarted: a retry would fail the same way)")

    def _reap(self, proc: _Proc) -> None:
        assert proc.popen is not None
        _signal_group(proc.popen, signal.SIGKILL)  # anything the node left in its group
        if proc.reader is not None:
            proc.reader.join(timeout=1.0)
        proc.popen = None

    def _on_exit(self, proc: _Proc, how: str, *, failed: bool) -> None:
        spec = proc.spec
        self._reap(proc)
        proc.last_exit, proc.failing = how, failed
        policy = spec.restart
        restart = policy == "always" or (policy == "on-failure" and failed)
        if not restart:
            if failed:
                proc.state = "failed"
                self.failure = f"node '{spec.name}' failed ({how}; restart: {policy}){_last_words(proc)}"
            else:
                proc.state = "done"
                log.info("node '%s' finished (%s)", spec.name, how)
                copies = [p for p in self.procs.values() if spec.group and p.spec.group == spec.group]
                if spec.ends_run and all(p.state == "done" for p in copies):  # a fleet: its last copy ends it
                    log.info("node '%s' ends the run (ends_run: true)", spec.name)
                    self._ended_by = f"node '{spec.name}' ended the run"
                    self._stop.set()  # `run` then checks that no other node was still failing
            self.telemetry.on_state(spec.name, proc.state)
            return
        now = now_ns()
        if now - proc.started_ns > self.config.restart_reset_s * 1e9:
            proc.attempts = 0
        proc.attempts += 1
        if proc.attempts > spec.max_restarts:
            proc.state = "failed"
            self.telemetry.on_state(spec.name, "failed")
            self.failure = (f"node '{spec.name}' gave up after {spec.max_restarts} restarts (last: {how}; "
                            f"raise max_restarts in {self.spec.where(spec.name)} to try longer)"
                            f"{_last_words(proc)}")
            return
        delay = min(spec.backoff_s * 2 ** (proc.attempts - 1), spec.backoff_max_s)
        log.warning("node '%s' %s: restart %d/%d in %.2f s", spec.name, how, proc.attempts, spec.max_restarts, delay)
        self.telemetry.on_restart(spec.name, how)
        proc.state = "waiting"
        proc.next_start_ns = now + int(delay * 1e9)


def _last_words(proc: _Proc) -> str:
    lines = [line for line in proc.tail if line.strip()]
    return f"; last output: {lines[-1].strip()}" if lines else ""


def _signal_group(popen: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    if popen is None:
        return
    try:
        os.killpg(popen.pid, sig)  # the node is its group's leader (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pid(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        popen.send_signal(sig)
    except ProcessLookupError:
        pass


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
