"""The PyBullet sim as a launch-file node (`agentrt run`), on the supervisor's wires.

    nodes:
      sim:
        class: sims.runtime_node:SimulationNode
        inputs: {actions: policy.actions}
        params: {task: reach, episodes: 3, clock: realtime, video_path: runs/reach.mp4}
        ends_run: true          # the run stops when the episodes are done
        restart: never

Outputs ``frames`` (scene camera, latest-only) and ``state`` (RobotState every
control tick); input ``actions`` (ActionChunk, lossless). Params are the fields
of `sims.node.SimConfig`; the episode logic, clocks and chunk handling are
`sims.node.SimNode`'s, so a sim behaves the same standalone and supervised.
Each received chunk's trace (capture -> hops -> arrival) goes to telemetry, and
so do its chunk counters (``SimNode.counters``, from the shared ``agentrt.chunks.ChunkExecutor``): ``bad.other_robot_chunks``
(chunks for another robot, refused), ``bad.rejected_actions`` (actions, or
whole chunks, the robot refused: wrong shape or kind; it holds),
``bad.not_chunks``, ``dropped.stale_chunks`` (computed from a frame of an
earlier episode) and ``unframed_chunks`` (frame_seq -1, executed).
"""

from __future__ import annotations

from collections import deque

from agentrt.messages import ActionChunk, Message
from agentrt.node import Node, latest, lossless
from sims.node import SimConfig, SimNode

__all__ = ["SimulationNode"]


class _Output:
    """``send(msg)`` on one of the node's outputs."""

    def __init__(self, node: Node, name: str) -> None:
        self._node, self._name = node, name

    def send(self, message: Message) -> None:
        self._node.send(self._name, message)


class _Actions:
    """``recv(timeout_ms)`` over the node's only input, recording each chunk's latency trace."""

    def __init__(self, node: SimulationNode) -> None:
        self._node = node
        self._pending: deque[Message] = deque()

    def recv(self, timeout_ms: int | None = None) -> Message | None:
        self._node.count_chunks()  # polling may flush telemetry: fresh figures
        if not self._pending:
            for _name, message in self._node.poll_inputs(0 if timeout_ms is None else timeout_ms):
                self._pending.append(message)
        if not self._pending:
            return None
        message = self._pending.popleft()
        self._node.stats.received["actions"] = self._node.stats.received.get("actions", 0) + 1
        if isinstance(message, ActionChunk):
            self._node.record_trace(message)
        return message


class _StopFlag:
    """``is_set()``: reading ``stop_requested`` is also what sends this node's heartbeats."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def is_set(self) -> bool:
        return self._node.stop_requested


class SimulationNode(Node):
    """Runs ``episodes`` episodes of a sim task, driven by the ActionChunks on ``actions``."""

    inputs = {"actions": lossless("ActionChunk")}
    outputs = {"frames": latest("Frame"), "state": latest("RobotState")}
    Config = SimConfig

    def setup(self) -> None:
        self.sim = SimNode(self.config)
        self.sim.env.connect()  # load the world before reporting ready

    def poll_inputs(self, timeout_ms: int) -> list[tuple[str, Message]]:
        return self._io.poll(int(timeout_ms * 1e6))

    def count_chunks(self) -> None:
        """Copy the sim's chunk counters into ``stats.counters`` (telemetry sends them)."""
        self.stats.counters.update(self.sim.counters())

    def run(self) -> None:
        try:
            results = self.sim.run_on(_Output(self, "frames"), _Output(self, "state"), _Actions(self), _StopFlag(self))
        finally:
            self.count_chunks()
        successes = sum(r.success for r in results)
        self.log.info("%d/%d episodes succeeded (%s)", successes, len(results), self.config.task)

    def teardown(self) -> None:
        sim = getattr(self, "sim", None)
        if sim is not None:
            sim.env.close()
