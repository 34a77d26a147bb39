"""A simulated arm in a PyBullet world, behind the shared ``Robot`` interface.

End-effector deltas are turned into joint targets with damped least-squares IK
(``sims.kinematics`` on a private copy of the arm, rest pose = home, so the null
space stays near home), refined until the tool point is where it was asked to
be. The end-effector target is integrated from the previous target while the
hand tracks it (within ``TRACKING_M``), so a zero delta holds the tool point
still; a blocked hand restarts from where it is, so it never winds up a far
target. Every joint command, from a ``joint_target`` or from IK, then goes
through ``sims.safety.limit_joint_motion`` from the joints last commanded (the
measured ones after a hold): the FK of the commanded joints is kept in the
workspace box and within the Cartesian and joint speed limits, and never leads
the measured tool point by more than two ee steps. Joints are position-controlled with a velocity cap
(``max_joint_speed_rad_s``). The robot never steps physics: the world's owner
does, so one clock drives robot and objects together.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from agentrt.errors import RobotError
from sims.descriptions import RobotDescription, get_description
from sims.kinematics import Kinematics
from sims.robot import Robot, RobotConfig, RobotObservation
from sims.safety import clip_ee_delta, clip_joint_target, clip_to_workspace, limit_joint_motion
from sims.world import World, WorldConfig

__all__ = ["SimRobot", "TRACKING_M"]

log = logging.getLogger(__name__)

# An ee_delta adds to the previous ee target while the measured tool point is this close to it (per axis):
# a hand at rest sags less than this, so zero deltas hold it still. Farther (moving fast, blocked, pushed,
# just released from a hold) it adds to the measured one, as the policies were trained: with 1 cm, a hand
# pressing on a cube wound up a target 1 cm below it and the shipped nano VLA lost ~15 points of success.
TRACKING_M = 0.002


class SimRobot(Robot):
    """A ``sims.descriptions`` robot loaded into a ``World`` (its own DIRECT world if none is given)."""

    def __init__(self, config: RobotConfig | None = None, world: World | None = None) -> None:
        super().__init__(config or RobotConfig())
        self.description: RobotDescription = get_description(self.config.robot)
        self._world = world
        self._owns_world = world is None
        self.body = -1
        self._lower = np.zeros(0)
        self._upper = np.zeros(0)
        self._target_orn = np.array([0.0, 0.0, 0.0, 1.0])
        self._ee_target: np.ndarray | None = None  # the tool point the last ee_delta asked for
        self._joints_cmd: np.ndarray | None = None  # the arm joints last commanded
        self._gripper_cmd = 0.0
        self._kinematics: Kinematics | None = None  # FK/IK on a private copy of the arm

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def world(self) -> World:
        if self._world is None:
            raise RobotError("the robot has no world: call connect() first")
        return self._world

    @property
    def is_connected(self) -> bool:
        return self._world is not None and self._world.is_connected and self.body >= 0

    def connect(self) -> None:
        if self.is_connected:
            return
        created = False
        try:
            if self._world is None:
                self._world = World(WorldConfig())
                created = True
            self.world.connect()
            if self._kinematics is None:
                d = self.description
                self._kinematics = Kinematics(Path(self.world.data_path) / d.urdf, d.arm_joints, d.ee_link,
                                              base_position=d.base_position, tcp_offset_m=d.tcp_offset_m)
            self.load()
        except Exception as exc:
            # Release what this call opened so a retry starts clean.
            self.body = -1
            self._close_kinematics()
            if created and self._world is not None:
                self._world.disconnect()
                self._world = None
            if isinstance(exc, RobotError):
                raise
            raise RobotError(f"could not load robot '{self.description.name}' ({self.description.urdf}): {exc}") from exc

    def load(self) -> None:
        """(Re)load the robot into the world, at home; called by connect() and after each world reset."""
        w, d = self.world, self.description
        p, c = w.p, w.client
        self.body = w.load_urdf(d.urdf, d.base_position, fixed=True)
        n = p.getNumJoints(self.body, physicsClientId=c)
        if max(d.arm_joints + d.gripper_joints + (d.ee_link,)) >= n:
            raise RobotError(f"robot '{d.name}': the description names joint/link indices past {n - 1}; fix the table row")
        infos = [p.getJointInfo(self.body, j, physicsClientId=c) for j in range(n)]
        self._lower = np.array([infos[j][8] for j in d.arm_joints])
        self._upper = np.array([infos[j][9] for j in d.arm_joints])
        for j, q in zip(d.arm_joints, d.home, strict=True):
            p.resetJointState(self.body, j, q, 0.0, physicsClientId=c)
        for j in d.gripper_joints:
            p.resetJointState(self.body, j, d.gripper_open, 0.0, physicsClientId=c)
            # Sticky fingertips: without this, cubes slip out of position-controlled fingers.
            p.changeDynamics(self.body, j, lateralFriction=1.5, physicsClientId=c)
        self._target_orn = np.array(p.getQuaternionFromEuler(d.ee_down_euler))
        self._gripper_cmd = 0.0
        self.watchdog.last_feed_ns = None
        self.hold()

    def disconnect(self) -> None:
        self.body = -1
        self._close_kinematics()
        if self._owns_world and self._world is not None:
            self._world.disconnect()
            self._world = None

    # -- shapes ------------------------------------------------------------------------------
    @property
    def n_joints(self) -> int:
        return len(self.description.arm_joints)

    @property
    def has_gripper(self) -> bool:
        return self.description.has_gripper

    @property
    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        return self._lower.copy(), self._upper.copy()

    # -- io ----------------------------------------------------------------------------------
    def now_ns(self) -> int:
        return self.world.time_ns

    def get_observation(self) -> RobotObservation:
        self._require_connected()
        w, d = self.world, self.description
        p, c = w.p, w.client
        states = p.getJointStates(self.body, d.arm_joints, physicsClientId=c)
        link = p.getLinkState(self.body, d.ee_link, computeForwardKinematics=True, physicsClientId=c)
        tcp, orn = p.multiplyTransforms(link[4], link[5], d.tcp_offset_m, [0, 0, 0, 1])
        return RobotObservation(
            joint_positions=np.array([s[0] for s in states]),
            joint_velocities=np.array([s[1] for s in states]),
            ee_pose=np.array(list(tcp) + list(orn)),
            gripper=self._measured_gripper(),
            t_ns=w.time_ns,
        )

    def _command(self, kind: str, values: np.ndarray) -> tuple[np.ndarray, bool]:
        return self._apply_ee_delta(values) if kind == "ee_delta" else self._apply_joint_target(values)

    def hold(self) -> None:
        if not self.is_connected:
            self.holding = True
            return
        p, c = self.world.p, self.world.client
        states = p.getJointStates(self.body, self.description.arm_joints, physicsClientId=c)
        self._command_joints(np.array([s[0] for s in states]))
        self._command_gripper(self._gripper_cmd)
        self._ee_target = None
        self.holding = True

    # -- internals ---------------------------------------------------------------------------
    def _require_connected(self) -> None:
        if not self.is_connected:
            raise RobotError(f"robot '{self.description.name}' is not connected: call connect() first")

    @property
    def kinematics(self) -> Kinematics:
        if self._kinematics is None:
            raise RobotError(f"robot '{self.description.name}' is not connected: call connect() first")
        return self._kinematics

    def tool_point(self, joints: np.ndarray) -> np.ndarray:
        """Where the tool point would be with the arm joints at ``joints`` (forward kinematics, xyz in m)."""
        return self.kinematics.forward(joints)[:3]

    def _close_kinematics(self) -> None:
        if self._kinematics is not None:
            self._kinematics.close()
            self._kinematics = None

    def _apply_ee_delta(self, values: np.ndarray) -> tuple[np.ndarray, bool]:
        p = self.world.p
        delta, clipped = clip_ee_delta(values, self.config)
        obs = self.get_observation()
        here = obs.ee_pose[:3]
        # Position: from the previous target while the hand tracks it (zero deltas hold still instead of
        # following the IK's and the motors' small errors), else from where the hand is (a blocked hand
        # does not wind up a far target).
        tracking = self._ee_target is not None and bool(np.all(np.abs(self._ee_target - here) <= TRACKING_M))
        base = self._ee_target if tracking and self._ee_target is not None else here
        target, outside = clip_to_workspace(base + delta[:3], self.config)
        if delta.shape[0] == 7:
            # Orientation: integrate on the commanded orientation, so small rotations do not drift.
            rot = p.getQuaternionFromEuler(delta[3:6].tolist())
            _, orn = p.multiplyTransforms([0, 0, 0], rot, [0, 0, 0], self._target_orn.tolist())
            self._target_orn = np.array(orn)
        solution = self.kinematics.inverse(target, obs.joint_positions, orientation=self._target_orn,
                                           rest=np.asarray(self.description.home))
        # Cut short (the arm lags, or a wild IK solution), the step does not change the action: the target
        # stays, and the arm goes on toward it while it tracks (TRACKING_M), as a motor's velocity cap would.
        joints, _ = limit_joint_motion(solution, self._motion_start(obs), self.tool_point, self.config, measured=here)
        self._command_joints(joints)
        self._ee_target = target
        self._gripper_cmd = float(delta[-1])
        self._command_gripper(self._gripper_cmd)
        sent = delta.copy()
        sent[:3] = target - base
        return sent, clipped or outside

    def _apply_joint_target(self, values: np.ndarray) -> tuple[np.ndarray, bool]:
        sent, clipped = clip_joint_target(values, self._lower, self._upper)
        n = self.n_joints
        obs = self.get_observation()
        joints, limited = limit_joint_motion(sent[:n], self._motion_start(obs), self.tool_point, self.config,
                                             measured=obs.ee_pose[:3])
        self._command_joints(joints)
        self._ee_target = None
        sent[:n] = joints
        if sent.shape[0] > n:
            self._gripper_cmd = float(sent[-1])
            self._command_gripper(self._gripper_cmd)
        return sent, clipped or limited

    def _motion_start(self, obs: RobotObservation) -> np.ndarray:
        """Where this step's motion starts: the joints last commanded (the measured ones after a hold).
        Not the measured joints: position control sags below its command under gravity, so commanding
        the measured joints step after step would sink the arm by that error every step (a hand that
        cannot keep up is handled by limit_joint_motion's ``measured`` checks instead)."""
        return obs.joint_positions if self._joints_cmd is None else self._joints_cmd

    def _command_joints(self, positions: np.ndarray) -> None:
        p, c, d = self.world.p, self.world.client, self.description
        self._joints_cmd = np.array(positions, dtype=np.float64)
        for j, q in zip(d.arm_joints, positions, strict=True):
            p.setJointMotorControl2(
                self.body,
                j,
                p.POSITION_CONTROL,
                targetPosition=float(q),
                targetVelocity=0.0,
                force=d.arm_force_n,
                maxVelocity=self.config.max_joint_speed_rad_s,
                physicsClientId=c,
            )

    def _command_gripper(self, command: float) -> None:
        d = self.description
        if not d.gripper_joints:
            return
        p, c = self.world.p, self.world.client
        q = d.gripper_open + (d.gripper_closed - d.gripper_open) * command
        for j in d.gripper_joints:
            p.setJointMotorControl2(
                self.body, j, p.POSITION_CONTROL, targetPosition=q, force=d.gripper_force_n, physicsClientId=c
            )

    def _measured_gripper(self) -> float:
        d = self.description
        if not d.gripper_joints:
            return 0.0
        p, c = self.world.p, self.world.client
        q = float(np.mean([s[0] for s in p.getJointStates(self.body, d.gripper_joints, physicsClientId=c)]))
        span = d.gripper_closed - d.gripper_open
        return float(np.clip((q - d.gripper_open) / span, 0.0, 1.0))
