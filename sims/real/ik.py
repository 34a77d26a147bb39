"""Forward and inverse kinematics of a real arm from its URDF, with PyBullet (a private DIRECT client).

The arm is loaded into its own physics client that never steps: only joint
states are set and link poses read. IK is position-only (a 5-joint arm cannot
reach every orientation), damped least squares from the current joint
positions as rest pose, so the solution stays close to where the arm is.

    kin = Kinematics(URDF, joint_names=("shoulder_pan", ...), ee_link="tcp")
    pose = kin.forward(q)              # (7,) xyz + quaternion xyzw of the tool point
    q2 = kin.inverse(pose[:3] + [0.01, 0, 0], q)
    kin.close()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agentrt.errors import MissingDependencyError, RobotError

__all__ = ["Kinematics"]


class Kinematics:
    """FK and position IK for the joints ``joint_names`` of one URDF."""

    def __init__(self, urdf: str | Path, joint_names: tuple[str, ...], ee_link: str) -> None:
        try:
            import pybullet
        except ImportError as exc:
            raise MissingDependencyError("pybullet", "end-effector actions on a real arm (IK)") from exc
        self._p: Any = pybullet
        path = Path(urdf)
        if not path.exists():
            raise RobotError(f"arm URDF {path} does not exist: give BusArmConfig.urdf_path or reinstall agentrt")
        self._client = pybullet.connect(pybullet.DIRECT)
        try:
            self._body = pybullet.loadURDF(str(path), useFixedBase=True, physicsClientId=self._client)
            names: dict[str, int] = {}
            links: dict[str, int] = {}
            self._movable: list[int] = []
            for j in range(pybullet.getNumJoints(self._body, physicsClientId=self._client)):
                info = pybullet.getJointInfo(self._body, j, physicsClientId=self._client)
                names[info[1].decode()] = j
                links[info[12].decode()] = j
                if info[2] != pybullet.JOINT_FIXED:
                    self._movable.append(j)
            missing = [n for n in joint_names if n not in names]
            if missing or ee_link not in links:
                raise RobotError(
                    f"{path} lacks joints {missing} or link '{ee_link}': expected joints {list(joint_names)}; "
                    f"it has {sorted(names)}"
                )
            self.joints = [names[n] for n in joint_names]
            self.ee_link = links[ee_link]
            infos = [pybullet.getJointInfo(self._body, j, physicsClientId=self._client) for j in self.joints]
            self.lower = np.array([i[8] for i in infos])
            self.upper = np.array([i[9] for i in infos])
        except Exception:
            pybullet.disconnect(self._client)
            raise

    def _set(self, q: np.ndarray) -> None:
        for j, value in zip(self.joints, q, strict=True):
            self._p.resetJointState(self._body, j, float(value), physicsClientId=self._client)

    def forward(self, q: np.ndarray) -> np.ndarray:
        """The ee link's pose at joint positions ``q``: (7,) xyz (m) + quaternion xyzw."""
        self._set(q)
        state = self._p.getLinkState(self._body, self.ee_link, computeForwardKinematics=True, physicsClientId=self._client)
        return np.array(list(state[4]) + list(state[5]), dtype=np.float64)

    def inverse(self, position: np.ndarray, q_now: np.ndarray, *, iterations: int = 4) -> np.ndarray:
        """Joint positions putting the ee link at ``position``, starting from (and staying near) ``q_now``."""
        p, c = self._p, self._client
        index = {j: i for i, j in enumerate(self.joints)}
        lower, upper, ranges, rest = [], [], [], []
        for j in self._movable:
            if j in index:
                i = index[j]
                lower.append(self.lower[i])
                upper.append(self.upper[i])
                ranges.append(self.upper[i] - self.lower[i])
                rest.append(float(q_now[i]))
            else:  # the gripper: pinned where it is
                lower.append(-1e-3)
                upper.append(1e-3)
                ranges.append(2e-3)
                rest.append(0.0)
        q = np.asarray(q_now, dtype=np.float64)
        for _ in range(iterations):  # PyBullet's IK is one damped step from the current state: refine
            self._set(q)
            solution = p.calculateInverseKinematics(
                self._body, self.ee_link, [float(v) for v in position],
                lowerLimits=lower, upperLimits=upper, jointRanges=ranges, restPoses=rest,
                maxNumIterations=50, residualThreshold=1e-5, physicsClientId=c,
            )
            by_joint = dict(zip(self._movable, solution, strict=True))
            q = np.clip(np.array([by_joint[j] for j in self.joints]), self.lower, self.upper)
        return q

    def close(self) -> None:
        if self._client >= 0:
            try:
                self._p.disconnect(self._client)
            except self._p.error:
                pass
            self._client = -1
