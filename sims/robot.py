"""The robot interface shared by simulated and real arms.

A robot is used in four calls: ``connect()``, ``get_observation()``,
``send_action(action)`` and ``disconnect()``. Between actions the caller also
calls ``enforce_watchdog()`` at the control rate (the sim loop does; a real
driver runs it on its own timer) so a robot whose commands stop arriving holds
still instead of finishing a stale motion.

Contract, for every implementation (``sims.check.check_robot`` verifies it):

- ``connect()`` either succeeds or releases whatever it opened and raises
  ``RobotError``; connecting again after a failure works.
- ``get_observation()`` returns a ``RobotObservation`` of fixed shapes.
- ``send_action(action)`` validates first: a NaN, a wrong length or an unknown
  kind raises ``ActionError`` and the robot holds its current position. A valid
  action is clipped to the safety limits (workspace box, joint limits, maximum
  velocity); the action actually sent is returned, and clipping is counted in
  ``stats``.
- Without a fresh action for ``deadline_ms`` the robot holds: joint targets
  become the measured positions, velocities go to zero, the gripper keeps its
  last command.

Actions (``Action.kind``):

| kind           | values                                                      | units             | limits (``sims.safety``) |
|----------------|-------------------------------------------------------------|-------------------|--------------------------|
| ``ee_delta``   | (dx, dy, dz, gripper) or (dx, dy, dz, droll, dpitch, dyaw, gripper) | m, rad per control step; gripper 0 open .. 1 closed | steps clipped to ``max_ee_speed_m_s`` / ``max_ee_rot_speed_rad_s`` x period per axis; the target tool point clipped into the workspace box; a zero delta holds the tool point |
| ``joint_target`` | arm joint positions, optionally + gripper               | rad; gripper 0 .. 1 | clipped to the joint limits; each action moves one control step toward it: joints by at most ``max_joint_speed_rad_s`` x period, the tool point (forward kinematics of the commanded joints) by at most ``max_ee_speed_m_s`` x period per axis and never out of the workspace box: a target outside it is not reached, the arm stops at the wall. Stream it (a chunk row per tick) to get there |

Both kinds end in ``sims.safety.limit_joint_motion``: whatever joints an action
(or its IK solution) asks for, their tool point is checked against the box and
the speed limit before they are commanded.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field

import numpy as np

from agentrt.chunks import Action  # one control step's command: the runtime's, shared with the chunk executor
from agentrt.errors import ActionError, ConfigError
from agentrt.wire import ACTION_KINDS  # the one list, beside the wire schema that checks ActionChunk

__all__ = [
    "ACTION_KINDS",
    "Action",
    "Robot",
    "RobotConfig",
    "RobotObservation",
    "RobotStats",
    "Watchdog",
]


@dataclass
class RobotConfig:
    """What every robot needs to know; sim and real drivers read the same fields."""

    robot: str = "panda"  # a row of sims.descriptions.ROBOTS (sim) or a driver's model name (real)
    control_hz: float = 20.0
    deadline_ms: float = 250.0  # deadman watchdog: hold if no action arrives within this
    workspace_min_m: tuple[float, float, float] = (0.2, -0.45, 0.005)
    workspace_max_m: tuple[float, float, float] = (0.85, 0.45, 0.65)
    max_ee_speed_m_s: float = 0.5  # per axis; at 20 Hz a step moves at most 2.5 cm
    max_ee_rot_speed_rad_s: float = 2.0  # per axis
    max_joint_speed_rad_s: float = 1.5

    def __post_init__(self) -> None:
        for name in ("control_hz", "deadline_ms", "max_ee_speed_m_s", "max_ee_rot_speed_rad_s", "max_joint_speed_rad_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"RobotConfig.{name}: expected a positive number, got {value!r}")
        low, high = tuple(self.workspace_min_m), tuple(self.workspace_max_m)
        if len(low) != 3 or len(high) != 3 or not all(lo < hi for lo, hi in zip(low, high, strict=True)):
            raise ConfigError(
                f"RobotConfig.workspace_min_m/max_m: expected two xyz triples with min < max, got {low} and {high}"
            )
        if self.deadline_ms < 1000.0 / self.control_hz:
            raise ConfigError(
                f"RobotConfig.deadline_ms: expected at least one control period ({1000.0 / self.control_hz:.1f} ms), "
                f"got {self.deadline_ms}; raise deadline_ms or control_hz"
            )

    @property
    def control_dt_s(self) -> float:
        return 1.0 / self.control_hz


@dataclass
class RobotObservation:
    """One reading of the robot; shapes are fixed per robot."""

    joint_positions: np.ndarray  # (n_joints,) float64, rad
    joint_velocities: np.ndarray  # (n_joints,) float64, rad/s
    ee_pose: np.ndarray  # (7,) xyz in m + quaternion xyzw
    gripper: float  # measured, 0 open .. 1 closed (0 for a robot without a gripper)
    t_ns: int  # the robot's clock: sim time for a simulated robot, CLOCK_MONOTONIC for a real one


@dataclass
class RobotStats:
    """Counters a robot keeps; telemetry and tests read them."""

    actions: int = 0  # valid actions sent
    clipped: int = 0  # actions changed by a safety limit
    rejected: int = 0  # actions refused (NaN, wrong length, unknown kind)
    watchdog_holds: int = 0  # times the watchdog made the robot hold


@dataclass
class Watchdog:
    """Deadman timer: ``expired`` once ``deadline_ms`` passes without ``feed``."""

    deadline_ms: float
    last_feed_ns: int | None = field(default=None)

    def feed(self, now_ns: int) -> None:
        self.last_feed_ns = now_ns

    def expired(self, now_ns: int) -> bool:
        if self.last_feed_ns is None:
            return True  # never fed: nothing commanded, so holding is right
        return (now_ns - self.last_feed_ns) > self.deadline_ms * 1e6


class Robot(abc.ABC):
    """Base class of every robot, simulated or real (see the module docstring for the contract)."""

    config: RobotConfig

    def __init__(self, config: RobotConfig) -> None:
        self.config = config
        self.stats = RobotStats()
        self.watchdog = Watchdog(config.deadline_ms)
        self.holding = True  # a freshly connected robot holds until told otherwise

    # -- lifecycle -------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the robot; on failure release what was opened and raise RobotError."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the robot; safe to call twice."""

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # -- shapes ------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def n_joints(self) -> int:
        """Number of arm joints (gripper excluded)."""

    @property
    @abc.abstractmethod
    def has_gripper(self) -> bool: ...

    # -- io ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def now_ns(self) -> int:
        """The robot's clock (sim time or CLOCK_MONOTONIC), used by the watchdog."""

    @abc.abstractmethod
    def get_observation(self) -> RobotObservation: ...

    def send_action(self, action: Action) -> Action:
        """Validate, clip, command; return the action actually sent. Raises ActionError and holds on a bad one."""
        from sims.safety import validate_action  # safety builds on this module's types

        self._require_connected()
        try:
            values = validate_action(action, n_joints=self.n_joints, has_gripper=self.has_gripper)
        except ActionError:
            self.stats.rejected += 1
            self.hold()
            raise
        sent, clipped = self._command(action.kind, values)
        self.stats.actions += 1
        self.stats.clipped += int(clipped)
        self.watchdog.feed(self.now_ns())
        self.holding = False
        return Action(action.kind, sent)

    @abc.abstractmethod
    def _command(self, kind: str, values: np.ndarray) -> tuple[np.ndarray, bool]:
        """Clip validated ``values`` to the limits and command them; return (values sent, whether clipped)."""

    @abc.abstractmethod
    def _require_connected(self) -> None:
        """Raise RobotError, naming the robot, unless it is connected."""

    @abc.abstractmethod
    def hold(self) -> None:
        """Stop where the robot is now: joint targets := measured positions, zero velocity."""

    def enforce_watchdog(self) -> bool:
        """Call at the control rate; holds (once) when the deadline passed. Returns True while holding."""
        if not self.holding and self.watchdog.expired(self.now_ns()):
            self.hold()
            self.stats.watchdog_holds += 1
        return self.holding
