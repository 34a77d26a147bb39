"""A rerun sink: frames, robot state, action chunks, the instruction and latency traces, to a .rrd file or
a live viewer, read off latest-only wires so it can never slow the control path.

    agentrt run launch/sim.yaml --rerun runs/sim.rrd          # a file: `rerun runs/sim.rrd` opens it
    agentrt run launch/sim.yaml --rerun rerun+http://127.0.0.1:9876/proxy   # a running viewer (`rerun`)

`add_rerun_sink` adds the node to a launched graph, each input wired to the first output of its
kind; or in a launch file::

    nodes:
      rerun:
        class: agentrt.nodes.rerun_sink:RerunSinkNode
        inputs: {frames: sim.frames, state: sim.state, actions: policy.actions}
        params: {target: runs/sim.rrd}

Every input is latest-only: a lossless output (the policy's chunks) also feeds a latest-only copy, so
the robot keeps its one lossless reader and a slow sink only skips messages (counted as ``skipped``).
Logging costs ~2 ms per image on the sink's own process, none on the sender's.

What it logs (entity paths), on the timelines ``time`` (seconds since the sink started, from each
message's capture or send time) and ``frame`` / ``state`` / ``chunk`` (the messages' own seq):

- ``camera/<stream>``: each frame (rr.Image);
- ``state/joints/<i>``, ``state/gripper``, ``state/ee/<x|y|z>``: robot state (rr.Scalars);
- ``actions/<i>``: the first step of each chunk, one series per action dimension (rr.Scalars);
- ``instruction``: the task in words, each time it changes (rr.TextLog);
- ``latency/<hop>``: ms from the frame's capture to each hop of a chunk's trace, ``latency/sink`` the
  chunk's arrival here (rr.Scalars).

Needs rerun-sdk 0.23 or later (``set_time`` and ``Scalars``): ``pip install 'agentrt[rerun]'``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentrt.errors import ConfigError, FrameTornError, MissingDependencyError
from agentrt.messages import ActionChunk, Frame, Message, RobotState
from agentrt.node import Input, Node, latest
from agentrt.pixels import to_rgb

if TYPE_CHECKING:
    from agentrt.launch_graph import LaunchSpec

__all__ = ["RerunSinkNodeConfig", "RerunSinkNode", "import_rerun", "add_rerun_sink", "is_live_address"]

SINK_NODE = "rerun"  # the name `add_rerun_sink` gives the node
LIVE_PREFIXES = ("rerun+http://", "rerun+https://", "rerun://", "http://", "https://")


def import_rerun() -> Any:
    """The rerun module, or one line naming the install command."""
    try:
        import rerun
    except ImportError:
        raise MissingDependencyError("rerun-sdk", "--rerun (logging to rerun)", "pip install 'agentrt[rerun]'") from None
    if not (hasattr(rerun, "Scalars") and hasattr(rerun.RecordingStream, "set_time")):
        raise ConfigError(f"--rerun needs rerun-sdk >= 0.23 (set_time, Scalars), got {rerun.__version__}: "
                          "run `pip install 'agentrt[rerun]'`")
    return rerun


def is_live_address(target: str) -> bool:
    """A viewer's gRPC address (logged to live) rather than a file path."""
    return target.startswith(LIVE_PREFIXES)


@dataclass
class RerunSinkNodeConfig:
    target: str = "runs/rerun.rrd"  # a .rrd path, or a live viewer's address (rerun+http://HOST:9876/proxy)
    application_id: str = "agentrt"
    images: bool = True  # False: state, chunks and latency only (a file that grows slowly)
    nice: int = 10  # the sink's niceness: on a busy CPU the control loop's nodes go first

    def __post_init__(self) -> None:
        if not self.target:
            raise ConfigError("RerunSinkNodeConfig.target: expected a .rrd path or a viewer address, got ''")
        if not 0 <= self.nice <= 19:
            raise ConfigError(f"RerunSinkNodeConfig.nice: expected 0..19, got {self.nice}")
        if not is_live_address(self.target) and not self.target.endswith(".rrd"):
            raise ConfigError(f"RerunSinkNodeConfig.target: expected a path ending in .rrd or a viewer address "
                              f"({LIVE_PREFIXES[0]}HOST:9876/proxy), got {self.target!r}")


class RerunSinkNode(Node):
    """Logs what arrives on its inputs to rerun; see the module docstring."""

    inputs = {"frames": latest("Frame"), "state": latest("RobotState"), "actions": latest("ActionChunk")}
    Config = RerunSinkNodeConfig
    trace = False  # its arrival is no actuation: its traces stay out of the run's latency report

    @classmethod
    def preflight(cls, config: RerunSinkNodeConfig) -> None:
        import_rerun()
        if not is_live_address(config.target):
            Path(config.target).parent.mkdir(parents=True, exist_ok=True)

    def setup(self) -> None:
        os.nice(self.config.nice)  # logging can wait; the sim and the policy cannot
        self.rr = import_rerun()
        cfg = self.config
        self.rec = self.rr.RecordingStream(cfg.application_id)
        if is_live_address(cfg.target):
            self.rec.connect_grpc(cfg.target)
        else:
            Path(cfg.target).parent.mkdir(parents=True, exist_ok=True)
            self.rec.save(cfg.target)
        self.t0_ns = 0
        self.instruction: str | None = None

    def run(self) -> None:
        for event in self.events():
            if isinstance(event, Input):
                self.log_message(event.message, event.t_recv_ns)

    def teardown(self) -> None:
        rec = getattr(self, "rec", None)
        if rec is not None:
            rec.flush()
            rec.disconnect()  # closes the file: everything logged is on disk

    # ---- one message -------------------------------------------------------------------------------

    def log_message(self, message: Message, t_recv_ns: int) -> None:
        if isinstance(message, Frame):
            if self.config.images:
                try:
                    image = to_rgb(message)
                except FrameTornError:  # the ring slot was written again while we read it: skip this one
                    self.stats.count("dropped.torn_frames")
                    return
                self._at("frame", message.seq, message.t_capture_ns)
                self.rec.log(f"camera/{message.stream}", self.rr.Image(image))
                self._count("frames")
        elif isinstance(message, RobotState):
            self._log_state(message)
        elif isinstance(message, ActionChunk):
            self._log_chunk(message, t_recv_ns)

    def _log_state(self, state: RobotState) -> None:
        rr = self.rr
        self._at("state", state.seq, state.t_ns)
        for i, q in enumerate(state.joint_positions):
            self.rec.log(f"state/joints/{i}", rr.Scalars([float(q)]))
        self.rec.log("state/gripper", rr.Scalars([float(state.gripper)]))
        for axis, value in zip("xyz", state.ee_pose[:3], strict=False):
            self.rec.log(f"state/ee/{axis}", rr.Scalars([float(value)]))
        if state.instruction != self.instruction:  # the task in words, when it changes (a new episode)
            self.instruction = state.instruction
            self.rec.log("instruction", rr.TextLog(state.instruction or "(no instruction)"))
            self._count("instructions")
        self._count("states")

    def _log_chunk(self, chunk: ActionChunk, t_recv_ns: int) -> None:
        rr = self.rr
        self._at("chunk", chunk.seq, chunk.t_capture_ns if chunk.frame_seq >= 0 else t_recv_ns)
        first = chunk.actions[0] if len(chunk.actions) else []
        for i, value in enumerate(first):
            self.rec.log(f"actions/{i}", rr.Scalars([float(value)]))
        if chunk.frame_seq >= 0 and chunk.t_capture_ns > 0:  # a chunk from no frame has no latency to show
            for hop, t_ns in [*chunk.hops, ("sink", t_recv_ns)]:
                self.rec.log(f"latency/{hop}", rr.Scalars([(t_ns - chunk.t_capture_ns) / 1e6]))
        self._count("chunks")

    def _at(self, timeline: str, seq: int, t_ns: int) -> None:
        if not self.t0_ns:
            self.t0_ns = t_ns
        self.rec.reset_time()  # a state is not on the frame timeline: each message sits on its own
        self.rec.set_time(timeline, sequence=int(seq))
        self.rec.set_time("time", duration=max(0, t_ns - self.t0_ns) / 1e9)

    def _count(self, what: str) -> None:
        self.stats.count(f"logged.{what}")

    @property
    def logged(self) -> dict[str, int]:
        """What was logged, by kind (the node's ``logged.*`` counters)."""
        return {k.removeprefix("logged."): v for k, v in self.stats.counters.items() if k.startswith("logged.")}


def add_rerun_sink(spec: LaunchSpec, target: str, host: str) -> list[str]:
    """Add a `RerunSinkNode` to ``spec`` on ``host``, each input wired to the first output of its kind
    (in the launch file's node order); returns the wires, ``input <- node.output``."""
    from agentrt.launch import build_config
    from agentrt.launch_graph import NodeSpec

    if SINK_NODE in spec.nodes:
        raise ConfigError(f"{spec.path}: --rerun adds a node named '{SINK_NODE}', but the launch file has one: "
                          "rename it, or wire agentrt.nodes.rerun_sink:RerunSinkNode yourself")
    inputs: dict[str, tuple[str, str]] = {}
    for input_name, port in RerunSinkNode.inputs.items():
        for node in spec.nodes.values():
            found = [o for o, p in node.cls.outputs.items() if p.message == port.message]
            if found and input_name not in inputs and node.host == host:
                inputs[input_name] = (node.name, sorted(found)[0])
    if not inputs:
        raise ConfigError(f"{spec.path}: --rerun found no output to log (frames, robot state or action chunks) "
                          f"on host '{host}'")
    params = {"target": target, "application_id": spec.name.replace("/", "_")}
    cls = RerunSinkNode
    spec.nodes[SINK_NODE] = NodeSpec(SINK_NODE, f"{cls.__module__}:{cls.__name__}", cls, params,
                                     build_config(cls, params), inputs, restart="never", host=host)
    return [f"{i} <- {n}.{o}" for i, (n, o) in inputs.items()]
