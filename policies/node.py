"""The nano VLA as a runtime node: frames + robot state in, ActionChunks out.

    nodes:
      policy:
        class: policies.node:NanoVLANode
        inputs: {frames: sim.frames, state: sim.state}
        params: {clock: realtime, decoding: consistency}

Lockstep: the sim publishes a frame exactly when it needs a chunk (and
republishes it until answered); the node answers each frame seq once, with the
first ``execute_steps`` steps of the chunk it planned, so it plans again as
often as in real time.
Real time: frames arrive at the sim's frame rate; the node plans from the
newest frame as soon as the chunk in flight has at most ``lead_steps`` steps
left, so the next chunk lands before the robot runs out, and drops the steps
that went by while it computed (capture -> now at the control rate).

The instruction comes on the wire: ``RobotState.instruction`` (the sim sets it
from its task), and ``RobotState.episode`` changing resets the policy's memory
(the previous chunk, the feature cache). ``instruction`` (non-empty) overrides
what the robot says, e.g. for a real arm whose driver has no task. With neither,
the node waits and says so once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from agentrt.errors import ConfigError
from agentrt.messages import ActionChunk, Frame, RobotState, now_ns
from agentrt.node import Input, Node, latest, lossless
from policies.data import robot_state
from sims.chunks import steps_to_run

__all__ = ["NanoVLANodeConfig", "NanoVLANode"]


@dataclass
class NanoVLANodeConfig:
    instruction: str = ""  # non-empty: tell the policy this instead of RobotState.instruction
    clock: str = "lockstep"  # lockstep | realtime, as the sim's
    control_hz: float = 20.0
    decoding: str = "consistency"  # ar | jacobi | consistency
    weights: str = ""  # empty: the shipped weights for the decoding mode
    vit_cache: bool = False
    lead_steps: int = 4  # real time: plan when the chunk in flight has this many steps left
    execute_steps: int = 4  # lockstep: send this many steps of each chunk (0 = all), so the sim asks again sooner
    robot: str = "arm"
    threads: int = 1  # the sim needs the other core

    def __post_init__(self) -> None:
        if self.clock not in ("lockstep", "realtime"):
            raise ConfigError(f"NanoVLANodeConfig.clock: expected lockstep or realtime, got {self.clock!r}")
        if self.control_hz <= 0 or self.lead_steps < 0 or self.execute_steps < 0:
            raise ConfigError(f"NanoVLANodeConfig: expected control_hz > 0, lead_steps >= 0, execute_steps >= 0, "
                              f"got {self.control_hz}, {self.lead_steps}, {self.execute_steps}")


class NanoVLANode(Node):
    inputs = {"frames": latest("Frame"), "state": latest("RobotState")}
    outputs = {"actions": lossless("ActionChunk")}
    Config = NanoVLANodeConfig

    def setup(self) -> None:
        from policies.policy import NanoPolicy, PolicyConfig

        c = self.config
        self.policy = NanoPolicy(PolicyConfig(weights=c.weights, decoding=c.decoding, vit_cache=c.vit_cache, threads=c.threads))
        size = self.policy.model.config.image_size
        self.policy.act(np.zeros((size, size, 3), np.uint8), np.zeros(4, np.float32), "warm up")  # first-call costs now
        self.policy.reset()
        self.episode = -1
        self.seq = 0
        self._state: RobotState | None = None
        self._warned_no_instruction = False
        self._answered = -1  # lockstep: the last frame seq answered
        self._chunk_steps_left_at = 0.0  # real time: monotonic time when the chunk in flight runs out

    def instruction(self, state: RobotState) -> str:
        return self.config.instruction or state.instruction

    def _on_state(self, state: RobotState) -> None:
        if state.episode != self.episode:
            self.episode = state.episode
            self.policy.reset()
            self._chunk_steps_left_at = 0.0
            self.log.info("episode %d: %s", self.episode, self.instruction(state) or "(no instruction)")
        self._state = state

    def run(self) -> None:
        for event in self.events():
            if not isinstance(event, Input):
                continue
            message = event.message
            if isinstance(message, RobotState):
                self._on_state(message)
            elif isinstance(message, Frame) and self._state is not None:
                self._on_frame(message)

    def _on_frame(self, frame: Frame) -> None:
        c = self.config
        if c.clock == "lockstep":
            if frame.seq <= self._answered:
                return
        elif time.monotonic() < self._chunk_steps_left_at:
            return
        state = self._state
        assert state is not None
        instruction = self.instruction(state)
        if not instruction:
            if not self._warned_no_instruction:
                self.log.warning("no instruction: the robot state carries none and the node's `instruction` param is empty; "
                                 "waiting (set policy.instruction in the launch file)")
                self._warned_no_instruction = True
            return
        chunk, info = self.policy.act(np.ascontiguousarray(frame.image[..., :3]), robot_state(state.ee_pose, state.gripper),
                                      instruction)
        chunk = steps_to_run(chunk, lockstep=c.clock == "lockstep", execute_steps=c.execute_steps,
                             t_capture_ns=frame.t_capture_ns, control_hz=c.control_hz)
        if c.clock == "realtime":
            self._chunk_steps_left_at = time.monotonic() + max(chunk.shape[0] - c.lead_steps, 1) / c.control_hz
        self._answered = frame.seq
        self.send("actions", ActionChunk(c.robot, self.seq, frame.seq, frame.t_capture_ns, "ee_delta", chunk,
                                         1e3 / c.control_hz, t_sent_ns=now_ns(), hops=list(frame.hops)))
        self.seq += 1
        self.log.debug("chunk %d: %.1f ms (decode %.1f ms, %d passes)", self.seq, info.total_ms, info.decode_ms, info.iterations)
