"""A simulated arm in a PyBullet world, behind the shared ``Robot`` interface.

End-effector deltas are turned into joint targets with PyBullet's damped
least-squares IK (rest pose = home, so the null space stays near home); joints
are position-controlled with a velocity cap, which is the maximum-velocity
limit. The robot never steps physics: the world's owner does, so one clock
drives robot and objects together.
"""

from __future__ import annotations

import logging

import numpy as np

from agentrt.errors import RobotError
from sims.descriptions import RobotDescription, get_description
from sims.robot import Robot, RobotConfig, RobotObservation
from sims.safety import clip_ee_delta, clip_joint_target, clip_to_workspace
from sims.world import World, WorldConfig

__all__ = ["SimRobot"]

log = logging.getLogger(__name__)


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
        self._ranges = np.zeros(0)
        self._movable: list[int] = []
        self._target_orn = np.array([0.0, 0.0, 0.0, 1.0])
        self._gripper_cmd = 0.0

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
            self.load()
        except Exception as exc:
            # Release what this call opened so a retry starts clean.
            self.body = -1
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
        self._movable = [j for j in range(n) if infos[j][2] != p.JOINT_FIXED]
        self._lower = np.array([infos[j][8] for j in d.arm_joints])
        self._upper = np.array([infos[j][9] for j in d.arm_joints])
        self._ranges = self._upper - self._lower
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
        self.holding = True

    # -- internals ---------------------------------------------------------------------------
    def _require_connected(self) -> None:
        if not self.is_connected:
            raise RobotError(f"robot '{self.description.name}' is not connected: call connect() first")

    def _apply_ee_delta(self, values: np.ndarray) -> tuple[np.ndarray, bool]:
        p = self.world.p
        delta, clipped = clip_ee_delta(values, self.config)
        pose = self.get_observation().ee_pose
        # Position: from where the hand is (so a blocked hand does not wind up a far target).
        target, outside = clip_to_workspace(pose[:3] + delta[:3], self.config)
        if delta.shape[0] == 7:
            # Orientation: integrate on the commanded orientation, so small rotations do not drift.
            rot = p.getQuaternionFromEuler(delta[3:6].tolist())
            _, orn = p.multiplyTransforms([0, 0, 0], rot, [0, 0, 0], self._target_orn.tolist())
            self._target_orn = np.array(orn)
        joints = self._ik(target, self._target_orn)
        self._command_joints(joints)
        self._gripper_cmd = float(delta[-1])
        self._command_gripper(self._gripper_cmd)
        sent = delta.copy()
        sent[:3] = target - pose[:3]
        return sent, clipped or outside

    def _apply_joint_target(self, values: np.ndarray) -> tuple[np.ndarray, bool]:
        sent, clipped = clip_joint_target(values, self._lower, self._upper)
        self._command_joints(sent[: self.n_joints])
        if sent.shape[0] > self.n_joints:
            self._gripper_cmd = float(sent[-1])
            self._command_gripper(self._gripper_cmd)
        return sent, clipped

    def _ik(self, position: np.ndarray, orientation: np.ndarray) -> np.ndarray:
        """Joint positions that put the tool point at ``position`` with ``orientation``."""
        p, c, d = self.world.p, self.world.client, self.description
        if any(d.tcp_offset_m):
            rot = np.array(p.getMatrixFromQuaternion(orientation.tolist())).reshape(3, 3)
            position = position - rot @ np.asarray(d.tcp_offset_m)
        # IK works over all movable joints; pass limits/rest only where we know them (arm), home elsewhere.
        lower, upper, ranges, rest = [], [], [], []
        home = dict(zip(d.arm_joints, d.home, strict=True))
        arm_index = {j: i for i, j in enumerate(d.arm_joints)}
        for j in self._movable:
            if j in arm_index:
                i = arm_index[j]
                lower.append(self._lower[i])
                upper.append(self._upper[i])
                ranges.append(self._ranges[i])
                rest.append(home[j])
            else:
                state = p.getJointState(self.body, j, physicsClientId=c)
                lower.append(state[0] - 1e-3)
                upper.append(state[0] + 1e-3)
                ranges.append(2e-3)
                rest.append(state[0])
        solution = p.calculateInverseKinematics(
            self.body,
            d.ee_link,
            position.tolist(),
            orientation.tolist(),
            lowerLimits=lower,
            upperLimits=upper,
            jointRanges=ranges,
            restPoses=rest,
            maxNumIterations=50,
            residualThreshold=1e-4,
            physicsClientId=c,
        )
        by_joint = dict(zip(self._movable, solution, strict=True))
        return np.clip(np.array([by_joint[j] for j in d.arm_joints]), self._lower, self._upper)

    def _command_joints(self, positions: np.ndarray) -> None:
        p, c, d = self.world.p, self.world.client, self.description
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
