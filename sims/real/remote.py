"""The model's side of a robot bridge, as a node: forwards action chunks to the bridge and its state back.

    nodes:
      robot:
        class: sims.real.remote:RemoteRobotNode
        inputs: {actions: policy.actions}
        params: {address: 10.0.0.7, keys_dir: keys/}     # the robot computer running `agentrt bridge`

Outputs ``state`` (``RobotState`` from the bridge, latest-only). Chunks go out
lossless; if the bridge does not take one within ``send_timeout_ms`` it is
dropped and counted (the bridge's watchdog holds the robot meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentrt.errors import ConfigError, TransportError
from agentrt.messages import ActionChunk, RobotState
from agentrt.node import Input, Node, Tick, latest, lossless

__all__ = ["RemoteRobotNodeConfig", "RemoteRobotNode"]


@dataclass
class RemoteRobotNodeConfig:
    address: str = ""  # host name or IP of the robot computer
    state_port: int = 7600
    actions_port: int = 7601
    keys_dir: str = ""  # the same `agentrt keys` folder as on the robot computer
    insecure: bool = False
    send_timeout_ms: int = 500

    def __post_init__(self) -> None:
        if not self.address or "://" in self.address:
            raise ConfigError(f"RemoteRobotNodeConfig.address: expected the robot computer's host or IP, got {self.address!r}")
        if not self.keys_dir and not self.insecure:
            raise ConfigError("RemoteRobotNodeConfig.keys_dir: the bridge needs CURVE keys (`agentrt keys keys/`); or set insecure")
        if self.send_timeout_ms <= 0:
            raise ConfigError(f"RemoteRobotNodeConfig.send_timeout_ms: expected > 0, got {self.send_timeout_ms}")


class RemoteRobotNode(Node):
    """Connects to ``agentrt bridge`` on another computer."""

    inputs = {"actions": lossless("ActionChunk")}
    outputs = {"state": latest("RobotState")}
    Config = RemoteRobotNodeConfig
    rate_hz = 200.0  # how often the bridge's state is forwarded

    def setup(self) -> None:
        from agentrt.transport import Publisher, Subscriber

        c = self.config
        setup: Any = None
        if c.keys_dir:
            from agentrt.curve import client_setup

            setup = client_setup(c.keys_dir)
        self.dropped = 0
        self._states = Subscriber(f"tcp://{c.address}:{c.state_port}", socket_setup=setup)
        self._actions = Publisher(f"tcp://{c.address}:{c.actions_port}", lossless=True, bind=False,
                                  send_timeout_ms=c.send_timeout_ms, socket_setup=setup)

    def run(self) -> None:
        for event in self.events():
            if isinstance(event, Input) and isinstance(event.message, ActionChunk):
                try:
                    self._actions.send(event.message)
                except TransportError as exc:
                    self.dropped += 1
                    self.log.warning("chunk %d not taken by the bridge: %s", event.message.seq, exc)
            elif isinstance(event, Tick):
                state = self._states.recv(timeout_ms=0)
                if isinstance(state, RobotState):
                    self.send("state", state)

    def teardown(self) -> None:
        for sock in (getattr(self, "_states", None), getattr(self, "_actions", None)):
            if sock is not None:
                sock.close()
