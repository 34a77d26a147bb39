"""The node API: a node is a plain Python class, named ``module:Class`` in a launch file.

A node declares its ``inputs`` and ``outputs`` (name -> `Port`: latest-only or
lossless), takes its parameters as a ``Config`` dataclass (validated in
``__post_init__``), warms up in ``setup()`` (it is reported *ready* when setup
returns) and then loops over typed events. Wiring, timers (``rate_hz``),
restart policy and host placement live in the launch file, never in node code;
endpoints come from the supervisor.

A complete node, message-driven (dora style; stop arrives as an event, so the
loop just ends)::

    from dataclasses import dataclass

    import numpy as np

    from agentrt.errors import ConfigError
    from agentrt.messages import ActionChunk, Frame, now_ns
    from agentrt.node import Input, Node, latest, lossless


    @dataclass
    class GainNodeConfig:
        gain: float = 0.1  # action = gain * mean pixel
        dims: int = 7

        def __post_init__(self) -> None:
            if self.dims < 1:
                raise ConfigError(f"dims must be >= 1, got {self.dims}")


    class GainNode(Node):
        inputs = {"frames": latest("Frame")}
        outputs = {"actions": lossless("ActionChunk")}
        Config = GainNodeConfig

        def setup(self) -> None:          # warm-up: load a model, run it once
            self.seq = 0

        def run(self) -> None:
            for event in self.events():           # or: for event in self:
                if isinstance(event, Input) and isinstance(event.message, Frame):
                    frame = event.message
                    value = self.config.gain * float(frame.image.mean())
                    actions = np.full((1, self.config.dims), value, np.float32)
                    self.send("actions", ActionChunk(
                        "arm", self.seq, frame.seq, frame.t_capture_ns, "ee_delta", actions, 10.0,
                        t_sent_ns=now_ns(), hops=list(frame.hops)))   # carry the trace forward
                    self.seq += 1

Timed style: set ``rate_hz`` (class default, or ``rate_hz:`` in the launch
file) and implement ``tick()``; inputs then go to ``on_input(name, message)``
(or loop over ``self.events()`` yourself and handle `Tick` events)::

    class PatternNode(Node):
        outputs = {"frames": latest("Frame")}
        rate_hz = 30.0

        def tick(self) -> None:
            self.send("frames", Frame("cam", self.ticks, now_ns(), image))

In a launch file::

    nodes:
      policy:
        class: mypkg.nodes:GainNode
        params: {gain: 0.2}
        inputs: {frames: camera.frames}

Test it without processes: ``agentrt.testing.MockNode(GainNode).run(inputs=[("frames", frame)])``.

`Node.send` appends ``(node name, now_ns())`` to a message's ``hops``; a node
that consumes a message with hops and has no outputs (or ``trace: true`` in the
launch file) records the trace ``capture -> hops -> receipt`` for telemetry.
The runtime counts what goes wrong on the wires (malformed messages, wrong
kinds, gaps, skips); a node counts what it refuses or drops itself in
``self.stats.counters``: keys ``bad.<what>`` (refused as invalid, e.g. a chunk
for another robot) and ``dropped.<what>`` (valid, not used, e.g. a stale chunk)
add to the run report's bad / dropped totals; other keys are reported as they are.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from agentrt.errors import ConfigError
from agentrt.messages import (
    ActionChunk,
    Answer,
    Frame,
    Heartbeat,
    Hop,
    Message,
    Query,
    RobotState,
    Telemetry,
    now_ns,
)

__all__ = [
    "Port",
    "latest",
    "lossless",
    "Input",
    "Tick",
    "Armed",
    "Stop",
    "Idle",
    "Event",
    "NodeIO",
    "NodeStats",
    "Node",
    "EmptyConfig",
    "check_node",
]

log = logging.getLogger(__name__)

MAX_TRACES = 4096  # traces kept between two telemetry reports
# What a port's ``message`` may name: the message classes a node receives (a FrameRef arrives as a Frame).
MESSAGE_KINDS = tuple(cls.__name__ for cls in (Frame, RobotState, ActionChunk, Query, Answer, Telemetry, Heartbeat))


@dataclass(frozen=True)
class Port:
    """One input or output of a node: latest-only (frames, state) or lossless (actions, answers)."""

    lossless: bool = False
    message: str = ""  # the message kind it carries, e.g. "Frame"; an input drops (and counts) other kinds


def latest(message: str = "") -> Port:
    """A latest-only port: a slow reader gets the newest message, never a queue of stale ones."""
    return Port(lossless=False, message=message)


def lossless(message: str = "") -> Port:
    """A lossless port: every message is delivered in order; the sender blocks rather than drop."""
    return Port(lossless=True, message=message)


# ---- events -------------------------------------------------------------------------------------


@dataclass
class Input:
    """A message arrived on input ``name``."""

    name: str
    message: Message
    t_recv_ns: int


@dataclass
class Tick:
    """The timer fired (``rate_hz``). ``late_ns``: how long after its due time it was delivered."""

    seq: int
    t_ns: int
    late_ns: int


@dataclass
class Armed:
    """The supervisor armed this node: every input it waits for (``arm_after``) is ready."""

    t_ns: int


@dataclass
class Stop:
    """Stop now (Ctrl-C, SIGTERM, the run ended). The event loop ends after this event."""

    reason: str


@dataclass
class Idle:
    """Nothing arrived and no tick was due (only with ``events(idle_ns=...)``): the node's own turn, e.g. to
    read a frame source that paces itself. Keep it short (a bounded wait): stop is checked after it."""

    t_ns: int


Event = Input | Tick | Armed | Stop | Idle


# ---- what a node runs on: processes (agentrt.nodehost) or in-process (agentrt.testing) -----------


class NodeIO(Protocol):
    """The transport a node runs on. Implemented by `agentrt.nodehost` and `agentrt.testing.MockNode`."""

    def clock_ns(self) -> int:
        """Monotonic time in ns (virtual in tests)."""
        ...

    def poll(self, timeout_ns: int) -> list[tuple[str, Message]]:
        """Messages that arrived, as (input name, message); waits up to ``timeout_ns`` for the first."""
        ...

    def send(self, output: str, message: Message) -> None: ...

    def stop_reason(self) -> str:
        """Non-empty once the node must stop: why."""
        ...

    def armed(self) -> bool: ...

    def beat(self) -> None:
        """Tell the supervisor the node is alive (a heartbeat when one is due); `events()` calls it."""
        ...

    def report(self, state: str) -> None:
        """Tell the supervisor: "ready" after setup, "stopping" at the end, "failed" on error."""
        ...


@dataclass
class NodeStats:
    """What a node counts for telemetry; the host reads and resets ``traces``."""

    ticks: int = 0
    over_budget: int = 0  # cycles that ended after the next tick was due
    missed_ticks: int = 0  # ticks skipped because the loop fell a whole period behind
    received: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    held_unarmed: int = 0  # inputs dropped because the node was not armed yet
    counters: dict[str, int] = field(default_factory=dict)  # the node's own counts, sent with telemetry as they are
    traces: deque[list[Hop]] = field(default_factory=lambda: deque(maxlen=MAX_TRACES))

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the node's own counter ``name`` (e.g. ``dropped.torn_frames``)."""
        self.counters[name] = self.counters.get(name, 0) + n


@dataclass
class EmptyConfig:
    """The config of a node without parameters."""


class Node:
    """Base of every node. Subclass, declare ports and ``Config``, implement ``run`` or ``tick``.

    The contract:
      * ``__init__`` is the runtime's: no I/O there. Warm up in ``setup()``.
      * ``run()`` returns when the loop over ``self.events()`` ends (after `Stop`).
      * ``send(output, message)`` only on declared outputs.
      * ``teardown()`` always runs, also after an exception.
    """

    inputs: ClassVar[dict[str, Port]] = {}
    outputs: ClassVar[dict[str, Port]] = {}
    Config: ClassVar[type[Any]] = EmptyConfig
    rate_hz: float = 0.0  # > 0: a timed node; the launch file can override it
    arm_after: tuple[str, ...] = ()  # inputs whose upstream must be ready before this node acts
    trace: bool | None = None  # record latency traces of inputs; None = when the node has no outputs
    # Config fields this node takes from the node wired to an input, e.g. {"state": ("clock", "control_hz")}:
    # a launch file gives them once, on that node, and a value given here too must agree (agentrt.launch_shared).
    params_from_inputs: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, config: Any, *, name: str, io: NodeIO, rate_hz: float | None = None,
                 arm_after: tuple[str, ...] | None = None, trace: bool | None = None) -> None:
        self.config = config
        self.name = name
        self.stats = NodeStats()
        self.log = logging.getLogger(f"agentrt.node.{name}")
        if rate_hz is not None:
            self.rate_hz = float(rate_hz)
        if arm_after is not None:
            self.arm_after = tuple(arm_after)
        if trace is not None:
            self.trace = trace
        self._trace_inputs = self.trace if self.trace is not None else not self.outputs
        self._io = io
        self._tick_seq = 0

    # ---- to override -------------------------------------------------------------------------

    @classmethod
    def preflight(cls, config: Any) -> None:
        """Check what ``config`` names on this machine (files, folders) without opening anything.

        `agentrt run` (and ``--check``) calls it on the host the node is placed on, before any
        process starts, so a missing file is one line at once instead of a node failing at start.
        Raise an `AgentRTError`. Default: nothing to check.
        """

    def setup(self) -> None:
        """Warm up (load a model and run it once, open a device). Ready is reported when it returns."""

    def run(self) -> None:
        """The node's loop. Default: ``tick()`` on each `Tick`, ``on_input()`` on each `Input`."""
        for event in self.events():
            if isinstance(event, Tick):
                self.tick()
            elif isinstance(event, Input):
                self.on_input(event.name, event.message)

    def tick(self) -> None:
        """One cycle of a timed node (``rate_hz`` > 0)."""

    def on_input(self, name: str, message: Message) -> None:
        """One message on input ``name`` (with the default ``run``)."""

    def teardown(self) -> None:
        """Release what setup opened. Runs also after an exception."""

    # ---- to call -------------------------------------------------------------------------------

    @property
    def stop_requested(self) -> bool:
        """True once the node must stop; a node with its own loop checks it (no side effect)."""
        return bool(self._io.stop_reason())

    def beat(self) -> None:
        """Say the node is alive. `events()` does it each iteration; a node with its own loop (or a
        long step, like a long answer) calls it at least every ``heartbeat_timeout_s``."""
        self._io.beat()

    @property
    def armed(self) -> bool:
        """False until every input in ``arm_after`` has a ready upstream (always True without it)."""
        return not self.arm_after or self._io.armed()

    @property
    def ticks(self) -> int:
        return self.stats.ticks

    def send(self, output: str, message: Message) -> None:
        """Send ``message`` on a declared output; appends this node's hop to ``message.hops``."""
        if output not in self.outputs:
            raise ConfigError(
                f"node '{self.name}' sent on output '{output}', but declares only {sorted(self.outputs)}: "
                f"add it to {type(self).__name__}.outputs"
            )
        hops = getattr(message, "hops", None)
        if hops is not None:
            hops.append((self.name, now_ns()))
        self._io.send(output, message)
        self.stats.sent[output] = self.stats.sent.get(output, 0) + 1

    def events(self, *, idle_ns: int | None = None) -> Iterator[Event]:
        """Typed events until `Stop`: `Input`, `Tick` (if ``rate_hz`` > 0), `Armed`, then `Stop`.

        ``idle_ns``: wait at most this long for inputs, then yield `Idle` when nothing came and no tick
        was due. For a node that waits on something of its own (a frame source) between its inputs.
        """
        io = self._io
        period_ns = int(1e9 / self.rate_hz) if self.rate_hz > 0 else 0
        next_tick = io.clock_ns() + period_ns if period_ns else 0
        was_armed = not self.arm_after
        idle_wait_ns = 50_000_000 if idle_ns is None else max(0, idle_ns)  # check for stop at least this often
        while True:
            io.beat()  # explicit, at the loop's cadence (at least every idle_wait_ns)
            reason = io.stop_reason()
            if reason:
                yield Stop(reason)
                return
            if not was_armed and io.armed():
                was_armed = True
                yield Armed(io.clock_ns())
            now = io.clock_ns()
            wait = min(idle_wait_ns, max(0, next_tick - now)) if period_ns else idle_wait_ns
            busy = False
            for name, message in io.poll(wait):
                busy = True
                if name in self.arm_after and not io.armed():
                    self.stats.held_unarmed += 1
                    continue
                t_recv = io.clock_ns()
                self.stats.received[name] = self.stats.received.get(name, 0) + 1
                if self._trace_inputs:
                    self._record_trace(message, t_recv)
                yield Input(name, message, t_recv)
            if period_ns and io.clock_ns() >= next_tick:
                busy = True
                due = next_tick
                started = io.clock_ns()
                yield Tick(self._tick_seq, started, started - due)
                self._tick_seq += 1
                self.stats.ticks += 1
                ended = io.clock_ns()
                next_tick = due + period_ns
                if ended > next_tick:
                    self.stats.over_budget += 1
                    if ended > next_tick + period_ns:  # a whole period behind: skip, do not burst
                        skipped = (ended - next_tick) // period_ns
                        self.stats.missed_ticks += int(skipped)
                        next_tick += skipped * period_ns
            if idle_ns is not None and not busy:
                yield Idle(io.clock_ns())

    def __iter__(self) -> Iterator[Event]:
        """``for event in self:`` is ``for event in self.events():``."""
        return self.events()

    def record_trace(self, message: Message) -> None:
        """Record ``message``'s trace now (for nodes that trace selected messages themselves)."""
        self._record_trace(message, now_ns())

    def _record_trace(self, message: Message, t_recv_ns: int) -> None:
        hops = getattr(message, "hops", None)
        if not hops:
            return
        capture = getattr(message, "t_capture_ns", 0)
        trace: list[Hop] = [("capture", int(capture))] if capture else []
        trace.extend((str(n), int(t)) for n, t in hops)
        trace.append((self.name, t_recv_ns))
        self.stats.traces.append(trace)


def check_node(cls: type) -> None:
    """Raise ConfigError if ``cls`` is not a well-formed node class (ports, Config, rate)."""
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise ConfigError(f"{cls!r} is not a node: expected a subclass of agentrt.node.Node")
    for attr in ("inputs", "outputs"):
        ports = getattr(cls, attr)
        if not isinstance(ports, dict) or not all(isinstance(k, str) and isinstance(v, Port)
                                                  for k, v in ports.items()):
            raise ConfigError(f"{cls.__name__}.{attr} must map names to latest()/lossless() ports, got {ports!r}")
        for name, port in ports.items():
            if port.message and port.message not in MESSAGE_KINDS:
                raise ConfigError(f"{cls.__name__}.{attr}['{name}'] carries {port.message!r}: expected one of "
                                  f"{', '.join(MESSAGE_KINDS)} (or nothing, for any kind)")
    if not dataclasses.is_dataclass(cls.Config):
        raise ConfigError(f"{cls.__name__}.Config must be a dataclass type, got {cls.Config!r}")
    if cls.rate_hz < 0:
        raise ConfigError(f"{cls.__name__}.rate_hz must be >= 0, got {cls.rate_hz}")
    unknown = [name for name in cls.arm_after if name not in cls.inputs]
    if unknown:
        raise ConfigError(f"{cls.__name__}.arm_after names {unknown}, which are not inputs {sorted(cls.inputs)}")
