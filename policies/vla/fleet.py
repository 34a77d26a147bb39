"""The robot's side of the policy server: ``FleetClient`` (one DEALER) and ``FleetLinkNode`` (a robot's node).

    nodes:
      link0:
        class: policies.vla.fleet:FleetLinkNode
        inputs: {frames: sim0.frames, state: sim0.state}
        params: {server: "tcp://127.0.0.1:7700"}   # clock and control_hz: the sim's (wired to `state`)

Several servers (replicas, ``policies.vla.replicas``): ``server: "tcp://h:7700,tcp://h:7701"`` and a
``replica`` index; the robot asks endpoint ``replica`` modulo their count, always the same one (its memory
lives in that replica). In a launch file ``repeat_step: {replica: 1}`` spreads robot i over them.

The link is what ``NanoVLANode`` is to its robot, with the model elsewhere: it plans on the robot's
schedule (``agentrt.scheduler.PlanGate``: each lockstep frame once; in real time when the chunk in flight
is down to ``lead_steps``), asks the server with ``[RobotState, Frame]`` and sends the robot the steps of
the reply it should run (``ChunkSchedule.steps_to_run``), on the same lossless output, so the robot sees
the chunk contract it has with a policy node of its own. One request in flight: while it waits, newer
frames replace older ones (latest-only inputs); no answer within ``timeout_ms`` and the next due frame
asks again (a lockstep sim republishes its frame until answered).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import zmq

from agentrt.errors import ConfigError, ProtocolError
from agentrt.messages import ActionChunk, Frame, RobotState, now_ns
from agentrt.node import Input, Node, latest, lossless
from agentrt.scheduler import ChunkSchedule, PlanGate
from agentrt.wire import decode, encode

__all__ = ["FleetClient", "FleetLinkNodeConfig", "FleetLinkNode", "FleetSource", "pick_server"]

POLL_MS = 50  # while waiting for a reply: how often the stop flag is looked at


def pick_server(servers: str, replica: int) -> str:
    """The one of the comma-separated ``servers`` a robot asks: index ``replica`` modulo their count."""
    endpoints = [s.strip() for s in servers.split(",") if s.strip()]
    bad = [e for e in endpoints if not e.startswith(("tcp://", "ipc://"))]
    if not endpoints or bad:
        raise ConfigError(f"fleet server: expected tcp://HOST:PORT or ipc://PATH, comma-separated for replicas, "
                          f"got {servers!r}")
    if replica < 0:
        raise ConfigError(f"fleet replica: expected an index >= 0, got {replica}")
    return endpoints[replica % len(endpoints)]


class FleetClient:
    """One robot's DEALER to the server; ``robot_id`` is its routing id (the key of its memory there).
    ``server``: one endpoint, or several (replicas), of which ``replica`` picks one for good (``pick_server``)."""

    def __init__(self, server: str, robot_id: str, replica: int = 0) -> None:
        if not robot_id or len(robot_id.encode()) > 255:
            raise ConfigError(f"fleet robot id: expected 1..255 bytes, got {robot_id!r}")
        self.robot_id = robot_id
        self.server = server = pick_server(server, replica)
        sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, robot_id.encode())
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 4)
        sock.connect(server)
        self.sock: zmq.Socket | None = sock
        self.bad_replies = 0

    def request(self, state: RobotState, frame: Frame, *, timeout_s: float,
                give_up: Callable[[], bool] = lambda: False) -> ActionChunk | None:
        """Ask for the chunk planned from ``frame``; -> it, or None after ``timeout_s`` (or once ``give_up()``)."""
        sock = self.sock
        assert sock is not None, "closed"
        try:
            sock.send_multipart([encode(state), encode(frame)], zmq.NOBLOCK)
        except zmq.Again:
            return None  # the server is gone and the queue is full: the next due frame tries again
        deadline = time.monotonic() + timeout_s
        while not give_up():
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not sock.poll(max(1, int(min(POLL_MS, left * 1e3)))):
                continue
            try:
                reply = decode(sock.recv(copy=False))
            except ProtocolError:
                self.bad_replies += 1
                continue
            if isinstance(reply, ActionChunk) and reply.frame_seq == frame.seq:
                return reply
            self.bad_replies += 1  # not a chunk, or the late answer to an earlier request: not this frame's
        return None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None


@dataclass
class FleetLinkNodeConfig:
    server: str = "tcp://127.0.0.1:7700"  # the policy server's ROUTER; replicas: several, comma-separated
    replica: int = 0  # which of several servers this robot asks, modulo their count (repeat_step: {replica: 1})
    robot_id: str = ""  # the routing id (the server keeps this robot's memory under it); "" = the node's name
    clock: str = "lockstep"  # in a launch file: the sim's (the node wired to `state`)
    control_hz: float = 20.0  # in a launch file: the sim's
    lead_steps: int = 4  # real time: plan when the chunk in flight has this many steps left
    execute_steps: int = 4  # lockstep: send this many steps of each chunk (0 = all)
    timeout_ms: float = 2000.0  # no reply this long: give up on that frame (the next due one asks again)

    def __post_init__(self) -> None:
        pick_server(self.server, self.replica)  # one line now for an endpoint that is not one
        if self.timeout_ms <= 0:
            raise ConfigError(f"FleetLinkNodeConfig.timeout_ms: expected > 0, got {self.timeout_ms}")
        _ = self.schedule

    @property
    def schedule(self) -> ChunkSchedule:
        return ChunkSchedule(self.clock, self.control_hz, self.lead_steps, self.execute_steps)


class FleetLinkNode(Node):
    inputs = {"frames": latest("Frame"), "state": latest("RobotState")}
    outputs = {"actions": lossless("ActionChunk")}
    Config = FleetLinkNodeConfig
    params_from_inputs = {"state": ("clock", "control_hz")}

    def setup(self) -> None:
        c = self.config
        self.client = FleetClient(c.server, c.robot_id or self.name, c.replica)
        self.schedule = c.schedule
        self.gate = PlanGate(self.schedule)
        self._state: RobotState | None = None
        self._episode = -1
        self.seq = 0
        for name in ("unanswered", "bad.replies"):
            self.stats.counters[name] = 0
        self.log.info("robot '%s' asks the policy server at %s", self.client.robot_id, self.client.server)

    def run(self) -> None:
        for event in self.events():
            if not isinstance(event, Input):
                continue
            if event.name == "state":
                state = cast(RobotState, event.message)
                if state.episode != self._episode:
                    self._episode = state.episode
                    self.gate.new_episode()
                self._state = state
            elif self._state is not None:
                self._on_frame(cast(Frame, event.message))

    def _on_frame(self, frame: Frame) -> None:
        if not self.gate.due(frame.seq):
            return
        assert self._state is not None
        reply = self.client.request(self._state, frame, timeout_s=self.config.timeout_ms / 1e3, give_up=self._waiting)
        self.stats.counters["bad.replies"] = self.client.bad_replies
        if reply is None:
            self.stats.counters["unanswered"] += 1
            return
        steps = self.schedule.steps_to_run(reply.actions, t_capture_ns=frame.t_capture_ns)
        self.gate.sent(frame.seq, steps.shape[0])
        self.send("actions", replace(reply, seq=self.seq, actions=steps, dt_ms=1e3 / self.config.control_hz,
                                     t_sent_ns=now_ns()))
        self.seq += 1

    def _waiting(self) -> bool:
        """While a reply is awaited (checked every POLL_MS): still alive to the supervisor; stop asked?"""
        self.beat()
        return self.stop_requested

    def teardown(self) -> None:
        if hasattr(self, "client"):
            self.client.close()


@dataclass
class FleetSource:
    """A ``sims.loop`` action source asking the policy server: a simulated robot with its client on board,
    no node between (what ``agentrt bench fleet`` runs, one process per robot). Lockstep: the episode loop
    waits for each chunk, asking again after ``timeout_s`` until ``stop``."""

    client: FleetClient
    env: Any  # the sims.SimEnv: its robot's name and the instruction of the episode
    schedule: ChunkSchedule = field(default_factory=ChunkSchedule)
    timeout_s: float = 5.0
    wants_frames: bool = True
    latencies_ms: list[float] = field(default_factory=list)  # capture -> chunk here
    chunks: int = 0
    _episode: int = -1
    _seq: int = 0
    _tick: Any = None

    def observe(self, tick: Any) -> None:
        if tick.step == 0:
            self._episode += 1
        if tick.image is not None:
            self._tick = tick

    def fetch(self, queue: Any, *, wait: bool, stop: threading.Event) -> None:
        if not wait or not self.schedule.lockstep:
            raise ConfigError("FleetSource runs lockstep episodes: give the episode loop and the schedule a lockstep clock")
        tick = self._tick
        if tick is None or not self.schedule.due(queue.remaining):
            return
        obs = tick.observation
        self._seq += 1
        state = RobotState(self.env.config.robot.robot, self._seq, obs.t_ns, np.asarray(obs.joint_positions),
                           np.asarray(obs.joint_velocities), np.asarray(obs.ee_pose), float(obs.gripper),
                           frame_seq=self._seq, instruction=self.env.instruction, episode=self._episode)
        frame = Frame("scene", self._seq, tick.t_capture_ns, tick.image)
        while not stop.is_set():
            reply = self.client.request(state, frame, timeout_s=self.timeout_s, give_up=stop.is_set)
            if reply is not None:
                self.latencies_ms.append((time.monotonic_ns() - tick.t_capture_ns) / 1e6)
                self.chunks += 1
                steps = self.schedule.steps_to_run(reply.actions, t_capture_ns=tick.t_capture_ns)
                queue.submit("ee_delta", steps, t_capture_ns=tick.t_capture_ns)
                return
