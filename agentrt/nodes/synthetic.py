"""A synthetic frame source: a moving gradient at ``rate_hz``, no camera needed.

    nodes:
      camera:
        class: agentrt.nodes.synthetic:SyntheticFrameNode
        rate_hz: 30
        params: {width: 64, height: 48}
"""

from __future__ import annotations

from dataclasses import dataclass

from agentrt.errors import ConfigError
from agentrt.messages import Frame, now_ns
from agentrt.node import Node, latest
from agentrt.pattern import synthetic_image

__all__ = ["SyntheticFrameNodeConfig", "SyntheticFrameNode", "synthetic_image"]


@dataclass
class SyntheticFrameNodeConfig:
    width: int = 64
    height: int = 48
    channels: int = 3  # 1, 3 or 4
    stream: str = "synthetic"

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ConfigError(f"width and height must be >= 1, got {self.width} x {self.height}")
        if self.channels not in (1, 3, 4):
            raise ConfigError(f"channels must be 1, 3 or 4, got {self.channels}")
        if not self.stream:
            raise ConfigError("stream must be a non-empty name, got ''")


class SyntheticFrameNode(Node):
    """Sends one synthetic `Frame` per tick on ``frames``."""

    outputs = {"frames": latest("Frame")}
    Config = SyntheticFrameNodeConfig
    rate_hz = 30.0

    def setup(self) -> None:
        c = self.config
        self._images = [synthetic_image(i, c.height, c.width, c.channels) for i in range(8)]

    def tick(self) -> None:
        seq = self.stats.ticks
        self.send("frames", Frame(self.config.stream, seq, now_ns(), self._images[seq % len(self._images)]))
