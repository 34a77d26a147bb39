"""Forward and inverse kinematics of an arm from its URDF, with PyBullet on a private DIRECT client.

The arm is loaded into its own physics client that never steps: only joint
states are set and link poses read, so FK of a *commanded* joint vector can be
checked (``sims.safety``) before the real or simulated arm moves there. IK is
damped least squares, refined from its own solution until the tool point is
where it was asked to be (PyBullet's one call stops short by centimetres when
it also pulls toward rest poses).

Used by the simulated arms (``sims.sim_robot``: joints and links by PyBullet
index, full pose IK, rest pose = home) and the real ones (``sims.real.arm``:
by URDF name, position-only IK, rest pose = where the arm is).

    kin = Kinematics(URDF, joints=("shoulder_pan", ...), ee_link="tcp")
    pose = kin.forward(q)              # (7,) xyz + quaternion xyzw of the tool point
    q2 = kin.inverse(pose[:3] + [0.01, 0, 0], q)
    kin.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.errors import MissingDependencyError, RobotError

__all__ = ["Kinematics"]


class Kinematics:
    """FK and IK for the arm joints ``joints`` (URDF names or PyBullet indices) of one URDF.

    The tool point is ``ee_link`` (name or index) moved by ``tcp_offset_m`` in that
    link's frame; ``base_position`` places the base as the world does.
    """

    def __init__(
        self,
        urdf: str | Path,
        joints: Sequence[str] | Sequence[int],
        ee_link: str | int,
        *,
        base_position: tuple[float, float, float] = (0.0, 0.0, 0.0),
        tcp_offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> None:
        try:
            import pybullet
        except ImportError as exc:
            raise MissingDependencyError("pybullet", "end-effector actions and workspace checks (kinematics)") from exc
        self._p: Any = pybullet
        path = Path(urdf)
        if not path.exists():
            raise RobotError(f"arm URDF {path} does not exist: give BusArmConfig.urdf_path or reinstall agentrt")
        self._tcp = [float(v) for v in tcp_offset_m]
        self._client = pybullet.connect(pybullet.DIRECT)
        try:
            self._body = pybullet.loadURDF(str(path), list(base_position), useFixedBase=True, physicsClientId=self._client)
            names: dict[str, int] = {}
            links: dict[str, int] = {}
            self._movable: list[int] = []
            n = pybullet.getNumJoints(self._body, physicsClientId=self._client)
            for j in range(n):
                info = pybullet.getJointInfo(self._body, j, physicsClientId=self._client)
                names[info[1].decode()] = j
                links[info[12].decode()] = j
                if info[2] != pybullet.JOINT_FIXED:
                    self._movable.append(j)
            self.joints = [j if isinstance(j, int) else names.get(j, -1) for j in joints]
            self.ee_link = ee_link if isinstance(ee_link, int) else links.get(ee_link, -1)
            if any(not 0 <= j < n for j in self.joints) or not 0 <= self.ee_link < n:
                raise RobotError(
                    f"{path} lacks joints or link: expected joints {list(joints)} and link {ee_link!r}; "
                    f"it has joints {sorted(names)} and links {sorted(links)}"
                )
            infos = [pybullet.getJointInfo(self._body, j, physicsClientId=self._client) for j in self.joints]
            self.lower = np.array([i[8] for i in infos])
            self.upper = np.array([i[9] for i in infos])
        except Exception:
            pybullet.disconnect(self._client)
            raise

    def _set(self, q: np.ndarray) -> None:
        for j, value in zip(self.joints, q, strict=True):
            self._p.resetJointState(self._body, j, float(value), physicsClientId=self._client)

    def _link_pose(self) -> tuple[Any, Any]:
        state = self._p.getLinkState(self._body, self.ee_link, computeForwardKinematics=True, physicsClientId=self._client)
        return state[4], state[5]

    def forward(self, q: np.ndarray) -> np.ndarray:
        """The tool point's pose at joint positions ``q``: (7,) xyz (m) + quaternion xyzw."""
        self._set(q)
        position, orientation = self._link_pose()
        if any(self._tcp):
            position, orientation = self._p.multiplyTransforms(position, orientation, self._tcp, [0, 0, 0, 1])
        return np.array(list(position) + list(orientation), dtype=np.float64)

    def inverse(
        self,
        position: np.ndarray,
        q_now: np.ndarray,
        *,
        orientation: np.ndarray | None = None,
        rest: np.ndarray | None = None,
        iterations: int = 4,
        tolerance_m: float = 2e-5,
    ) -> np.ndarray:
        """Joint positions putting the tool point at ``position`` (and ``orientation``, xyzw, if given).

        Starts from ``q_now``; the null space pulls toward ``rest`` (default ``q_now``, so the
        solution stays near where the arm is). Each pass is one PyBullet IK from the previous
        solution (up to ``iterations`` with the null space while they improve, then up to two
        without); passes stop once the tool point is within ``tolerance_m``, and the best
        solution found is returned.
        """
        p, c = self._p, self._client
        q_now = np.asarray(q_now, dtype=np.float64)
        rest_q = q_now if rest is None else np.asarray(rest, dtype=np.float64)
        goal = np.asarray(position, dtype=np.float64)
        index = {j: i for i, j in enumerate(self.joints)}
        lower, upper, ranges, rest_all = [], [], [], []
        for j in self._movable:
            if j in index:
                i = index[j]
                lower.append(float(self.lower[i]))
                upper.append(float(self.upper[i]))
                ranges.append(float(self.upper[i] - self.lower[i]))
                rest_all.append(float(rest_q[i]))
            else:  # joints outside the arm (a gripper): pinned where they are
                lower.append(-1e-3)
                upper.append(1e-3)
                ranges.append(2e-3)
                rest_all.append(0.0)
        orn = None if orientation is None else [float(v) for v in orientation]
        q = q_now.copy()
        best, best_error = q, np.inf
        # Passes keep the null space (limits, rest pose) while they improve; then up to two polish without
        # it, since the pull toward the rest pose leaves the Panda's tool point ~0.2 mm short for good.
        passes, polishing = 0, 0
        while polishing < 2 and passes < iterations + 2:
            polish = polishing > 0
            self._set(q)
            link_goal = goal
            if any(self._tcp):
                # The link origin that puts the tool point at the goal, with the hand oriented as asked
                # (or as it is now, for position-only IK).
                link_orn = orn if orn is not None else self._link_pose()[1]
                rot = np.array(p.getMatrixFromQuaternion(link_orn)).reshape(3, 3)
                link_goal = goal - rot @ np.asarray(self._tcp)
            args: list[Any] = [self._body, self.ee_link, [float(v) for v in link_goal]]
            if orn is not None:
                args.append(orn)
            null_space = {} if polish else {"lowerLimits": lower, "upperLimits": upper, "jointRanges": ranges,
                                            "restPoses": rest_all}
            solution = p.calculateInverseKinematics(*args, **null_space, maxNumIterations=50, residualThreshold=1e-5,
                                                    physicsClientId=c)
            by_joint = dict(zip(self._movable, solution, strict=True))
            q = np.clip(np.array([by_joint[j] for j in self.joints]), self.lower, self.upper)
            error = float(np.linalg.norm(self.forward(q)[:3] - goal))
            passes += 1
            stalled = error > 0.5 * best_error
            if error < best_error:
                best, best_error = q, error
            if best_error <= tolerance_m:
                break
            if polish or stalled or passes >= iterations:
                polishing += 1
        return best

    def close(self) -> None:
        if self._client >= 0:
            try:
                self._p.disconnect(self._client)
            except self._p.error:
                pass
            self._client = -1
