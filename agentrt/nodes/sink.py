"""An actuator stand-in: takes action chunks once armed, counts them, records latency traces.

    nodes:
      robot:
        class: agentrt.nodes.sink:ActionSinkNode
        inputs: {actions: policy.actions}
        arm_after: [actions]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from agentrt.errors import ConfigError
from agentrt.messages import ActionChunk
from agentrt.node import Armed, Input, Node, lossless

__all__ = ["ActionSinkNodeConfig", "ActionSinkNode"]


@dataclass
class ActionSinkNodeConfig:
    log_every: int = 0  # log one line every N chunks; 0 = never

    def __post_init__(self) -> None:
        if self.log_every < 0:
            raise ConfigError(f"log_every must be >= 0, got {self.log_every}")


class ActionSinkNode(Node):
    """Consumes ``actions``; ``self.chunks`` counts them, ``self.last`` is the newest."""

    inputs = {"actions": lossless("ActionChunk")}
    Config = ActionSinkNodeConfig
    arm_after = ("actions",)

    def setup(self) -> None:
        self.chunks = 0
        self.last: ActionChunk | None = None

    def run(self) -> None:
        for event in self.events():
            if isinstance(event, Armed):
                self.log.info("armed: upstream of %s is ready", ", ".join(self.arm_after))
            elif isinstance(event, Input):
                chunk = self.last = cast(ActionChunk, event.message)  # the port's kind: the host drops any other
                self.chunks += 1
                if self.config.log_every and self.chunks % self.config.log_every == 0:
                    self.log.info("%d chunks, last from frame %d", self.chunks, chunk.frame_seq)
