"""A PyBullet world: one physics client, a floor, simple objects, and sim time.

Every call passes ``physicsClientId``, never the global default client, so
several worlds live in one process (tests and benchmarks run many). PyBullet
is imported here, lazily, and nowhere at import time of ``sims``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from agentrt.errors import ConfigError, MissingDependencyError, RobotError

__all__ = ["WorldConfig", "World", "import_pybullet", "quiet_stdout"]

log = logging.getLogger(__name__)


def import_pybullet() -> tuple[ModuleType, str]:
    """(pybullet module, pybullet_data path); raises MissingDependencyError with the install command."""
    try:
        with quiet_stdout():  # pybullet prints its build time on import
            import pybullet
            import pybullet_data
    except ImportError:
        raise MissingDependencyError("pybullet", "the PyBullet simulator") from None
    return pybullet, pybullet_data.getDataPath()


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence C-level stdout and stderr (the EGL plugin prints its device list and GL vendor there)."""
    try:
        fds = [sys.stdout.fileno(), sys.stderr.fileno()]
    except (AttributeError, OSError, ValueError):
        yield  # not real files (pytest capture): nothing to silence at fd level
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "w") as devnull:
            for fd in fds:
                os.dup2(devnull.fileno(), fd)
            try:
                yield
            finally:
                _flush_c_stdio()  # C printf output still sitting in libc's buffer goes to /dev/null too
    finally:
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _flush_c_stdio() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


@dataclass
class WorldConfig:
    physics_hz: float = 240.0  # PyBullet's default step; the contact model is tuned for it
    gravity_m_s2: float = -9.81
    gui: bool = False  # the PyBullet GUI window; needs a display, one per process

    def __post_init__(self) -> None:
        if not (self.physics_hz >= 60.0):
            raise ConfigError(f"WorldConfig.physics_hz: expected >= 60, got {self.physics_hz}")


class World:
    """One PyBullet physics client with a floor; ``reset()`` empties it for a new episode."""

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        self.p: Any = None  # the pybullet module once connected
        self.data_path = ""
        self.client = -1
        self.steps = 0  # physics steps since reset: sim time is exact, never a float sum
        self.plugins: list[int] = []

    @property
    def is_connected(self) -> bool:
        return self.client >= 0

    @property
    def dt_s(self) -> float:
        return 1.0 / self.config.physics_hz

    @property
    def time_ns(self) -> int:
        return int(round(self.steps * 1e9 / self.config.physics_hz))

    def connect(self) -> None:
        if self.is_connected:
            return
        p, self.data_path = import_pybullet()
        if self.config.gui:
            if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
                raise RobotError("the PyBullet GUI needs a display but DISPLAY is not set: run without --gui (headless)")
            client = p.connect(p.GUI)
        else:
            client = p.connect(p.DIRECT)
        if client < 0:
            raise RobotError("PyBullet could not open a physics client (a GUI is already open in this process?)")
        self.p, self.client = p, client
        self.reset()

    def disconnect(self) -> None:
        if self.is_connected:
            try:
                # The EGL plugin prints on teardown; keep the terminal clean.
                with quiet_stdout() if self.plugins else contextlib.nullcontext():
                    self.p.disconnect(physicsClientId=self.client)
            finally:
                self.client = -1
                self.plugins = []

    def reset(self) -> None:
        """Remove every body and reload the floor; restores the exact same starting state."""
        p, c = self.p, self.client
        p.resetSimulation(physicsClientId=c)
        p.setAdditionalSearchPath(self.data_path, physicsClientId=c)
        p.setTimeStep(self.dt_s, physicsClientId=c)
        p.setGravity(0, 0, self.config.gravity_m_s2, physicsClientId=c)
        if self.config.gui:
            p.configureDebugVisualizer(p.COV_ENABLE_GUI, 0, physicsClientId=c)
        self.floor = p.loadURDF("plane.urdf", physicsClientId=c)
        self.steps = 0

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.p.stepSimulation(physicsClientId=self.client)
        self.steps += n

    # -- bodies ------------------------------------------------------------------------------
    def load_urdf(self, path: str, position: tuple[float, float, float] = (0, 0, 0), fixed: bool = True) -> int:
        return int(
            self.p.loadURDF(
                path,
                basePosition=position,
                useFixedBase=fixed,
                flags=self.p.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT,
                physicsClientId=self.client,
            )
        )

    def add_object(
        self,
        shape: str,
        size_m: float,
        rgba: tuple[float, float, float, float],
        position: tuple[float, float, float],
        yaw_rad: float = 0.0,
        mass_kg: float = 0.1,
    ) -> int:
        """A cube (edge size_m), cylinder (diameter and height size_m) or sphere (diameter size_m)."""
        p, c = self.p, self.client
        half = size_m / 2
        if shape == "cube":
            col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[half] * 3, physicsClientId=c)
            vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[half] * 3, rgbaColor=rgba, physicsClientId=c)
        elif shape == "cylinder":
            col = p.createCollisionShape(p.GEOM_CYLINDER, radius=half, height=size_m, physicsClientId=c)
            vis = p.createVisualShape(p.GEOM_CYLINDER, radius=half, length=size_m, rgbaColor=rgba, physicsClientId=c)
        elif shape == "sphere":
            col = p.createCollisionShape(p.GEOM_SPHERE, radius=half, physicsClientId=c)
            vis = p.createVisualShape(p.GEOM_SPHERE, radius=half, rgbaColor=rgba, physicsClientId=c)
        else:
            raise ConfigError(f"unknown object shape '{shape}': expected cube, cylinder or sphere")
        orientation = p.getQuaternionFromEuler([0, 0, yaw_rad])
        body = p.createMultiBody(
            baseMass=mass_kg,
            baseCollisionShapeIndex=col,
            baseVisualShapeIndex=vis,
            basePosition=position,
            baseOrientation=orientation,
            physicsClientId=c,
        )
        # Grippy, non-rolling objects: grasps hold and a sphere does not roll away by itself.
        p.changeDynamics(body, -1, lateralFriction=1.0, rollingFriction=0.001, spinningFriction=0.001, physicsClientId=c)
        return int(body)

    def add_tray(
        self, center: tuple[float, float], inner_m: float, rgba: tuple[float, float, float, float]
    ) -> int:
        """A static square tray: a thin base plate and four low walls, inner side ``inner_m``."""
        p, c = self.p, self.client
        wall, height, plate = 0.01, 0.03, 0.005
        half = inner_m / 2
        extents = [
            [half + wall, half + wall, plate / 2],
            [wall / 2, half + wall, height / 2],
            [wall / 2, half + wall, height / 2],
            [half + wall, wall / 2, height / 2],
            [half + wall, wall / 2, height / 2],
        ]
        offsets = [
            [0, 0, plate / 2],
            [half + wall / 2, 0, height / 2],
            [-half - wall / 2, 0, height / 2],
            [0, half + wall / 2, height / 2],
            [0, -half - wall / 2, height / 2],
        ]
        col = p.createCollisionShapeArray(
            [p.GEOM_BOX] * 5, halfExtents=extents, collisionFramePositions=offsets, physicsClientId=c
        )
        vis = p.createVisualShapeArray(
            [p.GEOM_BOX] * 5, halfExtents=extents, visualFramePositions=offsets, rgbaColors=[rgba] * 5, physicsClientId=c
        )
        body = p.createMultiBody(
            baseMass=0,
            baseCollisionShapeIndex=col,
            baseVisualShapeIndex=vis,
            basePosition=[center[0], center[1], 0.0],
            physicsClientId=c,
        )
        return int(body)

    def position(self, body: int) -> tuple[float, float, float]:
        pos, _ = self.p.getBasePositionAndOrientation(body, physicsClientId=self.client)
        return (float(pos[0]), float(pos[1]), float(pos[2]))

    def aabb(self, body: int, link: int = -1) -> tuple[tuple[float, ...], tuple[float, ...]]:
        low, high = self.p.getAABB(body, link, physicsClientId=self.client)
        return tuple(low), tuple(high)

    def in_contact(self, a: int, b: int) -> bool:
        return bool(self.p.getContactPoints(bodyA=a, bodyB=b, physicsClientId=self.client))
