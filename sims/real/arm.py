"""A serial-bus arm (SO-100 on Feetech, Koch on Dynamixel) behind the shared ``Robot`` interface.

Every ``get_observation`` is one SYNC_READ of all servos; every action one
SYNC_WRITE of goal positions. Limits are the same as in simulation
(``sims.safety``) plus the calibrated joint ranges and a per-step joint speed
cap (``max_joint_speed_rad_s`` x control period, measured from the previous
goal). End-effector deltas go through position IK on the arm's URDF
(``sims.kinematics``); on these 5-joint arms a 7-value ee_delta turns the wrist
roll by ``droll`` and cannot apply ``dpitch`` / ``dyaw`` (sent back as 0, counted as clipped).

Safety on hardware:

- **hold** (first deadline, ``deadline_ms``): no fresh action and the goal
  becomes the measured position. A watchdog thread checks this at the control
  rate, so it also works when the caller stalls.
- **release** (second deadline, ``release_after_ms``): still nothing, and the
  torque goes off (the arm goes limp: support it). The next valid action
  re-arms it: goal := measured position, torque on, then the action.
- **bus failure** (a servo does not answer after retries, a corrupt reply, an
  error bit, a pulled cable): torque off is sent to every servo (best effort)
  and ``BusError`` is raised saying what failed.
- ``disconnect()`` (Ctrl-C, a node's teardown on supervisor shutdown) turns the
  torque off. A process killed with SIGKILL cannot: the servos keep their last goal.

    arm = BusArm(BusArmConfig(robot="so100", port="/dev/ttyACM0", calibration_path="calib/so100.json"))
    arm.connect()                          # servos checked (sims.real.servos), torque on, holding where it is
    arm.send_action(Action.joint_target(q, gripper=0.0))
    arm.disconnect()                       # torque off
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from agentrt.errors import ConfigError, RobotError
from sims.kinematics import Kinematics
from sims.real.arms import ArmModel, get_arm
from sims.real.bus import BusConfig, BusError, ServoBus, Transport
from sims.real.calibration import Calibration, load_calibration, nominal_calibration
from sims.real.servos import ServoState, check_servos
from sims.robot import Action, Robot, RobotConfig, RobotObservation
from sims.safety import clip_ee_delta, clip_joint_target, clip_to_workspace, limit_joint_motion

__all__ = ["BusArmConfig", "BusArm"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class BusArmConfig(RobotConfig):
    """``RobotConfig`` plus the bus, calibration and release deadline; defaults sized for an SO-100."""

    robot: str = "so100"  # a row of sims.real.arms.ARMS
    control_hz: float = 30.0
    workspace_min_m: tuple[float, float, float] = (0.05, -0.3, 0.01)
    workspace_max_m: tuple[float, float, float] = (0.38, 0.3, 0.35)
    max_ee_speed_m_s: float = 0.15
    max_joint_speed_rad_s: float = 2.0
    port: str = "/dev/ttyACM0"
    baudrate: int = 1_000_000
    timeout_ms: float = 20.0  # per status packet
    retries: int = 1  # per bus transaction
    calibration_path: str = ""  # required on hardware; "" in a dry run = a nominal calibration
    dry_run: bool = False  # open no port: an emulated bus answers and every servo write is logged
    release_after_ms: float = 2000.0  # second deadline: torque off after this long without an action
    watchdog_thread: bool = True  # enforce hold / release on a timer of our own
    urdf_path: str = ""  # "" = the arm's bundled approximate URDF

    def __post_init__(self) -> None:
        super().__post_init__()
        get_arm(self.robot)
        if not self.release_after_ms > self.deadline_ms:
            raise ConfigError(
                f"BusArmConfig.release_after_ms: expected more than deadline_ms={self.deadline_ms} "
                f"(hold first, then release), got {self.release_after_ms}"
            )
        if not self.dry_run and not self.calibration_path:
            raise ConfigError(
                f"BusArmConfig.calibration_path: a real {self.robot} needs one; make it with "
                f"`agentrt bridge --arm {self.robot} --port {self.port} --calibrate calib/{self.robot}.json`, or set dry_run"
            )
        self.bus_config()  # validates port, baudrate, timeout_ms, retries

    def bus_config(self) -> BusConfig:
        model = get_arm(self.robot)
        return BusConfig(port=self.port, protocol=model.protocol, baudrate=self.baudrate,
                         timeout_ms=self.timeout_ms, retries=self.retries, dry_run=self.dry_run)


class BusArm(Robot):
    """A real arm on a servo bus; thread-safe (one lock around the bus)."""

    config: BusArmConfig

    def __init__(self, config: BusArmConfig | None = None, *, transport: Transport | None = None) -> None:
        super().__init__(config or BusArmConfig(dry_run=True))
        self.model: ArmModel = get_arm(self.config.robot)
        self._transport = transport  # tests: a bus other than the configured port
        self.bus: ServoBus | None = None
        self.calibration: Calibration | None = None
        self.servos: dict[int, ServoState] = {}  # what connect found (model, mode, torque, lock, position)
        self.kinematics: Kinematics | None = None
        self.released = True  # torque off
        self.releases = 0  # times the torque went off (second deadline, bus failure)
        self.release_reason = ""
        self._lock = threading.RLock()
        self._lower = np.zeros(0)
        self._upper = np.zeros(0)
        self._goal = np.zeros(0)  # arm goal, rad
        self._gripper_cmd = 0.0
        self._armed_ns = 0
        self._last_q: np.ndarray | None = None
        self._last_t_ns = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.bus is not None and self.bus.is_open

    def connect(self) -> None:
        with self._lock:
            if self.is_connected:
                return
            cfg, model = self.config, self.model
            checked = False
            try:
                if cfg.calibration_path and (not cfg.dry_run or Path(cfg.calibration_path).exists()):
                    self.calibration = load_calibration(cfg.calibration_path, model)
                else:
                    log.warning("dry run: no calibration file, using a nominal one (zero at mid-turn, +-100 degrees)")
                    self.calibration = nominal_calibration(model)
                urdf = cfg.urdf_path or str(model.urdf_path)
                self.kinematics = Kinematics(urdf, model.joint_names, model.ee_link)
                cal_low, cal_high = self.calibration.joint_limits()
                self._lower = np.maximum(cal_low, self.kinematics.lower)
                self._upper = np.minimum(cal_high, self.kinematics.upper)
                self.bus = ServoBus(cfg.bus_config(), model.all_ids, transport=self._transport, models=model.models_by_id)
                self.bus.open()
                self.servos = check_servos(self.bus, model.name, model.models_by_id)
                checked = True
                self.calibration.apply_to_motors(self.bus)  # a LeRobot file: its homing offsets and limits
                self._arm_torque()
            except Exception as exc:
                # A failed check wrote nothing: leave the servos as found. Past it, torque off (best effort).
                self._close(torque_off=checked and self.bus is not None and self.bus.is_open)
                if isinstance(exc, (RobotError, ConfigError)):
                    raise
                raise RobotError(f"could not connect the {model.name} on {cfg.port}: {exc}") from exc
            self.watchdog.last_feed_ns = None
            self.holding = True
            log.info("%s connected on %s (%s): torque on, holding", model.name, self.bus.where, model.protocol)
            if cfg.watchdog_thread:
                self._stop.clear()
                self._thread = threading.Thread(target=self._watchdog_loop, name=f"{model.name}-watchdog", daemon=True)
                self._thread.start()

    def disconnect(self) -> None:
        """Torque off and close the port; safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._thread = None
        with self._lock:
            self._close(torque_off=True)

    def _close(self, *, torque_off: bool) -> None:
        if self.bus is not None:
            if torque_off and self.bus.is_open:
                try:
                    self.bus.set_torque(False)
                    log.info("%s: torque off", self.model.name)
                except BusError as exc:
                    log.error("%s: could not turn the torque off: %s", self.model.name, exc)
            self.bus.close()
            self.bus = None
        if self.kinematics is not None:
            self.kinematics.close()
            self.kinematics = None
        self.released = True

    # -- shapes ------------------------------------------------------------------------------
    @property
    def n_joints(self) -> int:
        return len(self.model.joint_names)

    @property
    def has_gripper(self) -> bool:
        return True

    @property
    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        return self._lower.copy(), self._upper.copy()

    # -- io ----------------------------------------------------------------------------------
    def now_ns(self) -> int:
        return time.monotonic_ns()

    def get_observation(self) -> RobotObservation:
        with self._lock:
            q, gripper = self._measure()
            t = self.now_ns()
            if self._last_q is None or t <= self._last_t_ns:
                velocity = np.zeros_like(q)
            else:
                velocity = (q - self._last_q) / ((t - self._last_t_ns) / 1e9)
            self._last_q, self._last_t_ns = q, t
            assert self.kinematics is not None
            return RobotObservation(q, velocity, self.kinematics.forward(q), gripper, t)

    def send_action(self, action: Action) -> Action:
        with self._lock:  # one bus transaction at a time; hold() re-enters on a rejected action
            return super().send_action(action)

    def _command(self, kind: str, values: np.ndarray) -> tuple[np.ndarray, bool]:
        if self.released:
            log.warning("%s: re-arming after release (%s): torque on at the measured pose", self.model.name, self.release_reason)
            self._bus(self._arm_torque)
        return self._ee_delta(values) if kind == "ee_delta" else self._joint_target(values)

    def hold(self) -> None:
        with self._lock:
            if self.is_connected and not self.released:
                q, _ = self._measure()
                self._goal = np.clip(q, self._lower, self._upper)
                self._write_goal()
            self.holding = True

    def enforce_watchdog(self) -> bool:
        """Hold after ``deadline_ms`` without an action; torque off after ``release_after_ms``."""
        with self._lock:
            if not self.is_connected:
                return True
            holding = super().enforce_watchdog()
            since = max(self.watchdog.last_feed_ns or 0, self._armed_ns)
            if not self.released and self.now_ns() - since > self.config.release_after_ms * 1e6:
                self._release(f"no action for {self.config.release_after_ms:g} ms (release_after_ms)", level=logging.WARNING)
            return holding

    # -- internals ---------------------------------------------------------------------------
    def _require_connected(self) -> None:
        if not self.is_connected:
            raise RobotError(f"the {self.model.name} is not connected: call connect() first")

    def _bus(self, call: Callable[[], T]) -> T:
        """Run a bus call; on failure send torque off to every servo and re-raise, saying so."""
        try:
            return call()
        except BusError as exc:
            done = self._release(str(exc))
            raise BusError(
                f"{exc} -- torque off {'sent to every servo' if done else 'could not be sent'}",
                servo_id=exc.servo_id, port_lost=exc.port_lost,
            ) from None

    def _release(self, reason: str, *, level: int = logging.ERROR) -> bool:
        """Torque off (best effort); True if the command went out."""
        self.released, self.holding = True, True
        self.release_reason = reason
        self.releases += 1
        log.log(level, "%s: torque off: %s", self.model.name, reason)
        if self.bus is None or not self.bus.is_open:
            return False
        try:
            self.bus.set_torque(False)
            return True
        except BusError as exc:
            log.error("%s: torque off failed too: %s", self.model.name, exc)
            return False

    def _arm_torque(self) -> None:
        """Goal := measured position, then torque on (never jump to a stale goal)."""
        assert self.bus is not None
        q, gripper = self._read()
        self._goal = np.clip(q, self._lower, self._upper)
        self._gripper_cmd = gripper
        self._write_goal(raw=True)
        self.bus.set_torque(True)
        self.released = False
        self._armed_ns = self.now_ns()

    def _read(self) -> tuple[np.ndarray, float]:
        assert self.bus is not None and self.calibration is not None
        steps = self.bus.sync_read("present_position")
        q = self.calibration.to_radians(np.array([steps[i] for i in self.model.ids]))
        return q, self.calibration.gripper_from_steps(steps[self.model.gripper_id])

    def _measure(self) -> tuple[np.ndarray, float]:
        self._require_connected()
        return self._bus(self._read)

    def _write_goal(self, *, raw: bool = False) -> None:
        assert self.bus is not None and self.calibration is not None
        steps = self.calibration.to_steps(self._goal)
        values = {i: int(s) for i, s in zip(self.model.ids, steps, strict=True)}
        values[self.model.gripper_id] = self.calibration.gripper_to_steps(self._gripper_cmd)
        bus = self.bus
        if raw:
            bus.sync_write("goal_position", values)
        else:
            self._bus(lambda: bus.sync_write("goal_position", values))

    def _move_to(self, q: np.ndarray, gripper: float | None) -> bool:
        """Command joint goals ``q`` (already within limits), capped per step; True if the cap changed them."""
        step = self.config.max_joint_speed_rad_s * self.config.control_dt_s
        capped = self._goal + np.clip(q - self._goal, -step, step)
        if gripper is not None:
            self._gripper_cmd = float(gripper)
        changed = bool(np.any(np.abs(capped - q) > 1e-12))
        self._goal = capped
        self._write_goal()
        return changed

    def _tool_point(self, q: np.ndarray) -> np.ndarray:
        assert self.kinematics is not None
        return self.kinematics.forward(q)[:3]

    def _joint_target(self, values: np.ndarray) -> tuple[np.ndarray, bool]:
        sent, clipped = clip_joint_target(values, self._lower, self._upper)
        n = self.n_joints
        # From the last goal: the tool point of the joints commanded stays in the box and within the speeds.
        joints, _ = limit_joint_motion(sent[:n], self._goal, self._tool_point, self.config)
        self._move_to(joints, float(sent[n]) if sent.shape[0] > n else None)
        capped = bool(np.any(np.abs(self._goal - sent[:n]) > 1e-12))
        sent[:n] = self._goal
        return sent, clipped or capped

    def _ee_delta(self, values: np.ndarray) -> tuple[np.ndarray, bool]:
        assert self.kinematics is not None
        delta, clipped = clip_ee_delta(values, self.config)
        q, _ = self._measure()
        pose = self.kinematics.forward(q)
        target, outside = clip_to_workspace(pose[:3] + delta[:3], self.config)
        solution = self.kinematics.inverse(target, q)
        sent = delta.copy()
        if delta.shape[0] == 7:
            roll = self.model.joint_names.index(self.model.roll_joint)
            solution[roll] += delta[3]
            clipped = clipped or bool(np.any(delta[4:6] != 0.0))
            sent[4:6] = 0.0  # a 5-joint arm cannot pitch / yaw the tool freely
        solution = np.clip(solution, self._lower, self._upper)
        # The IK solution obeys the same checks as a joint target (an IK that lands elsewhere stops at the box).
        joints, _ = limit_joint_motion(solution, self._goal, self._tool_point, self.config, measured=pose[:3])
        self._move_to(joints, float(delta[-1]))
        capped = bool(np.any(np.abs(self._goal - solution) > 1e-12))
        sent[:3] = target - pose[:3]
        return sent, clipped or outside or capped

    def _watchdog_loop(self) -> None:
        period = self.config.control_dt_s
        while not self._stop.wait(period):
            try:
                self.enforce_watchdog()
            except RobotError as exc:
                log.error("%s watchdog: %s", self.model.name, exc)
