"""The network robot bridge: a robot on one computer, the model on another, over tcp with CURVE.

A small process on the robot's computer (``agentrt bridge``) owns the robot
and speaks wire protocol v1 (docs/protocol.md, "The robot bridge"):

- ``tcp://<bind>:<state_port>``: ``RobotState`` every control tick, PUB, latest-only;
- ``tcp://<bind>:<actions_port>``: ``ActionChunk`` in, PULL, lossless, in order.

Both sockets bind on the robot and are CURVE servers: only clients whose
public key is in ``<keys_dir>/authorized`` (``agentrt keys``) complete the
handshake. The bridge executes one chunk step per control tick through the
``Robot`` interface (limits, watchdog: hold after ``deadline_ms``, torque off
after ``release_after_ms`` on a bus arm), so a lost network holds the robot
and then releases it. On exit, Ctrl-C or SIGTERM it disconnects the robot
(torque off).

    bridge = RobotBridge(arm, BridgeConfig(keys_dir="keys"))
    bridge.run(stop_event)               # returns when stop_event is set
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentrt.errors import ConfigError
from sims.real.actuator import Actuator
from sims.robot import Robot

if TYPE_CHECKING:
    from agentrt.transport import Publisher, Subscriber

__all__ = ["BridgeConfig", "RobotBridge"]

log = logging.getLogger(__name__)


@dataclass
class BridgeConfig:
    bind: str = ""  # interface to listen on; "" = 0.0.0.0 with keys, 127.0.0.1 when insecure (no one else)
    state_port: int = 7600  # 0 = any free port (see RobotBridge.state_address)
    actions_port: int = 7601
    keys_dir: str = ""  # CURVE keys made by `agentrt keys DIR`; required unless insecure
    insecure: bool = False  # plain tcp, no authentication: a trusted cable or localhost only
    name: str = ""  # RobotState.robot; "" = the robot's config.robot
    status_every_s: float = 10.0

    def __post_init__(self) -> None:
        for field_name in ("state_port", "actions_port"):
            port = getattr(self, field_name)
            if not (isinstance(port, int) and 0 <= port <= 65535):
                raise ConfigError(f"BridgeConfig.{field_name}: expected a tcp port 0..65535, got {port!r}")
        if self.state_port and self.state_port == self.actions_port:
            raise ConfigError(f"BridgeConfig: state_port and actions_port must differ, both are {self.state_port}")
        if not self.keys_dir and not self.insecure:
            raise ConfigError(
                "the robot bridge needs CURVE keys: run `agentrt keys keys/`, copy keys/ to the model's machine, "
                "and start the bridge with --keys keys/ (or --insecure, on a trusted network only)"
            )
        if not self.bind:  # without CURVE anyone who reaches the port moves the robot: this machine only
            self.bind = "127.0.0.1" if self.insecure else "0.0.0.0"

    def endpoint(self, port: int) -> str:
        return f"tcp://{self.bind}:{port if port else '*'}"


class RobotBridge:
    """Serves one ``Robot`` on the wire until ``run``'s stop event is set."""

    def __init__(self, robot: Robot, config: BridgeConfig) -> None:
        self.robot = robot
        self.config = config
        self.state_address = ""
        self.actions_address = ""
        self.ready = threading.Event()  # set once the sockets are bound and the robot is connected
        self.states_sent = 0
        self.actuator: Actuator | None = None
        self._actions: Subscriber | None = None

    @property
    def chunks(self) -> int:
        """Chunks executed: at least one step reached the robot (each chunk counted once)."""
        return self.actuator.executed_chunks if self.actuator is not None else 0

    @property
    def malformed(self) -> int:
        """Messages dropped on the actions port: undecodable (wire), torn, not an ActionChunk, or a bad chunk."""
        wire = self._actions.stats.bad + self._actions.stats.torn if self._actions is not None else 0
        return wire + (self.actuator.bad_chunks if self.actuator is not None else 0)

    @property
    def refused(self) -> int:
        """Chunks addressed to another robot."""
        return self.actuator.refused_chunks if self.actuator is not None else 0

    def counters(self) -> str:
        s = self.robot.stats
        bad_actions = self.actuator.bad_actions if self.actuator is not None else 0
        return (f"{self.states_sent} states, {self.chunks} chunks executed, {self.malformed} malformed messages, "
                f"{self.refused} chunks for another robot, {bad_actions} bad actions; actions {s.actions}, "
                f"clipped {s.clipped}, rejected {s.rejected}, watchdog holds {s.watchdog_holds}")

    def run(self, stop: threading.Event) -> None:
        import zmq

        from agentrt.transport import Publisher, Subscriber

        cfg = self.config
        setup = None
        if cfg.keys_dir:
            from agentrt.curve import server_setup

            setup = server_setup(cfg.keys_dir)
        elif cfg.insecure:
            log.warning("robot bridge without CURVE (--insecure): anyone who reaches %s can move the robot", cfg.bind)
        with (
            Publisher(cfg.endpoint(cfg.state_port), socket_setup=setup) as states,
            Subscriber(cfg.endpoint(cfg.actions_port), lossless=True, bind=True, socket_setup=setup) as actions,
        ):
            self.state_address = states.bound_address
            self.actions_address = actions.socket.getsockopt_string(zmq.LAST_ENDPOINT)
            self._actions = actions
            self.robot.connect()
            try:
                self.actuator = Actuator(self.robot, cfg.name or self.robot.config.robot)
                log.info("robot bridge: state on %s, actions on %s, %s", self.state_address, self.actions_address,
                         "CURVE" if setup else "no authentication")
                self.ready.set()
                self._loop(stop, states, actions, self.actuator)
            finally:
                self.robot.disconnect()
                log.info("robot bridge: robot disconnected after %s", self.counters())

    def _loop(self, stop: threading.Event, states: Publisher, actions: Subscriber, actuator: Actuator) -> None:
        period = self.robot.config.control_dt_s
        next_tick = time.monotonic()
        next_status = next_tick + self.config.status_every_s
        recv, send = actions.recv, states.send
        while not stop.is_set():
            while (remaining := next_tick - time.monotonic()) > 0:
                message = recv(timeout_ms=max(1, int(remaining * 1000)))
                if message is not None:
                    actuator.submit(message)
            send(actuator.step())
            self.states_sent += 1
            now = time.monotonic()
            next_tick += period
            if now > next_tick + period:  # fell a whole period behind: skip, do not burst
                next_tick = now + period
            if now >= next_status:
                next_status = now + self.config.status_every_s
                log.info("robot bridge: %s", self.counters())
