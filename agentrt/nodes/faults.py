"""Nodes that fail on purpose, to see the supervisor handle it (tests and demos).

    CrashOnStartNode   raises in setup(): bounded restarts, then one clear failure
    HangAfterNode      a timed node whose tick blocks forever after ``ticks`` ticks: heartbeat timeout
    RefuseAfterNode    a timed node that raises a ConfigError after ``ticks`` ticks: ended at once, never restarted
    IgnoreStopNode     ignores SIGTERM and leaves a child process behind: SIGKILL of its process group
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass

from agentrt.errors import ConfigError
from agentrt.messages import Frame, now_ns
from agentrt.node import Node, latest
from agentrt.pattern import synthetic_image

__all__ = ["CrashOnStartNodeConfig", "CrashOnStartNode", "HangAfterNodeConfig", "HangAfterNode",
           "RefuseAfterNodeConfig", "RefuseAfterNode", "IgnoreStopNode"]


@dataclass
class CrashOnStartNodeConfig:
    message: str = "simulated crash at start"


class CrashOnStartNode(Node):
    outputs = {"frames": latest("Frame")}
    Config = CrashOnStartNodeConfig

    def setup(self) -> None:
        raise RuntimeError(self.config.message)


@dataclass
class HangAfterNodeConfig:
    ticks: int = 20  # ticks before the hang

    def __post_init__(self) -> None:
        if self.ticks < 0:
            raise ConfigError(f"ticks must be >= 0, got {self.ticks}")


class HangAfterNode(Node):
    outputs = {"frames": latest("Frame")}
    Config = HangAfterNodeConfig
    rate_hz = 50.0

    def tick(self) -> None:
        if self.stats.ticks >= self.config.ticks:
            while True:  # a wedged driver: no events, no heartbeats
                time.sleep(3600)
        self.send("frames", Frame("hang", self.stats.ticks, now_ns(), synthetic_image(self.stats.ticks, 8, 8, 1)))


@dataclass
class RefuseAfterNodeConfig:
    ticks: int = 20  # ticks before the refusal

    def __post_init__(self) -> None:
        if self.ticks < 0:
            raise ConfigError(f"ticks must be >= 0, got {self.ticks}")


class RefuseAfterNode(Node):
    """Runs, then meets what a retry would meet again (a policy seeing a robot its weights do not know)."""

    outputs = {"frames": latest("Frame")}
    Config = RefuseAfterNodeConfig
    rate_hz = 50.0

    def tick(self) -> None:
        if self.stats.ticks >= self.config.ticks:
            raise ConfigError(f"refused after {self.stats.ticks} ticks: this input cannot be driven")
        self.send("frames", Frame("refuse", self.stats.ticks, now_ns(), synthetic_image(self.stats.ticks, 8, 8, 1)))


class IgnoreStopNode(Node):
    """Ignores SIGTERM and starts ``sleep 600`` in its process group; only SIGKILL of the group ends both."""

    outputs = {"frames": latest("Frame")}
    rate_hz = 20.0

    def setup(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.child = subprocess.Popen(["sleep", "600"])
        self.log.info("child pid %d", self.child.pid)

    def tick(self) -> None:
        self.send("frames", Frame("stubborn", self.stats.ticks, now_ns(), synthetic_image(0, 8, 8, 1)))
