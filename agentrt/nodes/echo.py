"""A stand-in policy: one `ActionChunk` per frame, after an optional fake warm-up and work time.

    nodes:
      policy:
        class: agentrt.nodes.echo:EchoNode
        params: {dims: 7, steps: 4, warmup_s: 0.2}
        inputs: {frames: camera.frames}
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

import numpy as np

from agentrt.errors import ConfigError
from agentrt.messages import ActionChunk, Frame, now_ns
from agentrt.node import Input, Node, latest, lossless

__all__ = ["EchoNodeConfig", "EchoNode"]


@dataclass
class EchoNodeConfig:
    robot: str = "arm"
    dims: int = 7
    steps: int = 1  # actions per chunk
    dt_ms: float = 10.0  # time between the actions of a chunk
    work_ms: float = 0.0  # pretend inference time per frame
    warmup_s: float = 0.0  # pretend model load in setup()

    def __post_init__(self) -> None:
        if self.dims < 1 or self.steps < 1:
            raise ConfigError(f"dims and steps must be >= 1, got dims={self.dims} steps={self.steps}")
        if self.work_ms < 0 or self.warmup_s < 0 or self.dt_ms <= 0:
            raise ConfigError(f"work_ms, warmup_s must be >= 0 and dt_ms > 0, got {self}")


class EchoNode(Node):
    """Maps each frame to a chunk whose actions are the frame's mean pixel / 255 (deterministic)."""

    inputs = {"frames": latest("Frame")}
    outputs = {"actions": lossless("ActionChunk")}
    Config = EchoNodeConfig

    def setup(self) -> None:
        time.sleep(self.config.warmup_s)
        self.seq = 0

    def run(self) -> None:
        c = self.config
        for event in self.events():
            if not isinstance(event, Input):
                continue
            frame = cast(Frame, event.message)  # the port's kind: the host drops any other
            if c.work_ms:
                time.sleep(c.work_ms / 1e3)
            value = float(frame.image[::8, ::8].mean()) / 255.0
            actions = np.full((c.steps, c.dims), value, np.float32)
            chunk = ActionChunk(c.robot, self.seq, frame.seq, frame.t_capture_ns, "ee_delta", actions, c.dt_ms,
                                t_sent_ns=now_ns(), hops=list(frame.hops))
            self.send("actions", chunk)
            self.seq += 1
