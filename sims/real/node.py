"""A real arm as a node: action chunks in (lossless), robot state out (latest-only), at ``control_hz``.

    nodes:
      arm:
        class: sims.real.node:ArmNode
        inputs: {actions: policy.actions}
        params: {robot: so100, port: /dev/ttyACM0, calibration_path: calib/so100.json}
        restart: never              # a failed arm stays down (torque off) until a person looks

``params`` are the fields of ``sims.real.arm.BusArmConfig`` (``ArmNodeConfig`` adds none); ``dry_run: true``
opens no port and logs every servo write. Teardown (Stop from Ctrl-C or the
supervisor's shutdown, or after a crash) turns the torque off. Chunks must name
this arm (``ActionChunk.robot`` = ``robot``); the actuator's counters (executed,
for another robot, malformed) go to telemetry.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentrt.messages import ActionChunk
from agentrt.node import Input, Node, Tick, latest, lossless
from sims.real.actuator import Actuator
from sims.real.arm import BusArm, BusArmConfig

__all__ = ["ArmNodeConfig", "ArmNode"]


@dataclass
class ArmNodeConfig(BusArmConfig):
    """The arm node's params: exactly the arm's (``BusArmConfig``), so the node hands its config to ``BusArm``."""


class ArmNode(Node):
    """Drives a ``BusArm``; publishes ``RobotState`` every control tick."""

    inputs = {"actions": lossless("ActionChunk")}
    outputs = {"state": latest("RobotState")}
    Config = ArmNodeConfig
    rate_hz = 30.0

    def setup(self) -> None:
        self.rate_hz = float(self.config.control_hz)
        self.arm: BusArm | None = BusArm(self.config)
        self.arm.connect()
        self.actuator = Actuator(self.arm, self.config.robot)

    def run(self) -> None:
        for event in self.events():
            if isinstance(event, Input) and isinstance(event.message, ActionChunk):
                self.actuator.submit(event.message)
            elif isinstance(event, Tick):
                self.send("state", self.actuator.step())
                self.stats.counters.update(self.actuator.counters())

    def teardown(self) -> None:
        arm = getattr(self, "arm", None)
        if arm is not None:
            arm.disconnect()  # torque off
            self.arm = None
