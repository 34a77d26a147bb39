"""Rendered cameras: a fixed scene camera and a wrist camera, any resolution.

Renderers: the EGL plugin that ships with pybullet (``eglRenderer``; GPU or Mesa
llvmpipe) when it loads, else PyBullet's CPU TinyRenderer. ``renderer="auto"``
tries EGL and falls back; ``Cameras.renderer`` says which one is in use.
Rendering dominates a sim step's cost (~15-35 ms per image on 2 cores), so the
sim renders at the policy's rate, never inside expert success tests.

The scene camera stands in front of the robot, above the workspace, facing the
robot (the robot appears at the top of the image). Task language uses this
view: "left" is the image's left, which is the robot's right (-y).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from agentrt.errors import ConfigError
from sims.world import World, quiet_stdout

__all__ = ["SceneCameraConfig", "Cameras", "RENDERERS", "project_scene"]

log = logging.getLogger(__name__)

RENDERERS = ("auto", "egl", "tiny")


@dataclass
class SceneCameraConfig:
    width: int = 128
    height: int = 128
    fov_deg: float = 50.0
    near_m: float = 0.01
    far_m: float = 3.0
    renderer: str = "auto"  # auto | egl | tiny
    scene_eye_m: tuple[float, float, float] = (0.95, 0.0, 0.5)  # in front of the robot, facing it
    scene_target_m: tuple[float, float, float] = (0.45, 0.0, 0.05)
    wrist_offset_m: float = 0.02  # camera sits this far in front of the end-effector point, looking along the tool

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 8 <= value <= 4096):
                raise ConfigError(f"SceneCameraConfig.{name}: expected an int in 8..4096 pixels, got {value!r}")
        if self.renderer not in RENDERERS:
            raise ConfigError(f"SceneCameraConfig.renderer: expected one of {', '.join(RENDERERS)}, got {self.renderer!r}")
        if not (0 < self.near_m < self.far_m):
            raise ConfigError(f"SceneCameraConfig.near_m/far_m: expected 0 < near < far, got {self.near_m}, {self.far_m}")


class Cameras:
    """The scene and wrist cameras of one world; ``setup()`` after every world reset."""

    def __init__(self, world: World, config: SceneCameraConfig | None = None) -> None:
        self.world = world
        self.config = config or SceneCameraConfig()
        self.renderer = "none"  # egl | tiny (| opengl in the GUI) once set up
        self._egl_plugin = -1
        self._quiet_renders = 2  # the EGL plugin announces its GL vendor during the first images

    def setup(self) -> str:
        """Choose the renderer (loading the EGL plugin once per client); returns its name."""
        p, c = self.world.p, self.world.client
        if self.config.renderer in ("auto", "egl") and self._egl_plugin < 0:
            self._egl_plugin = self._load_egl()
            if self._egl_plugin < 0 and self.config.renderer == "egl":
                raise ConfigError("SceneCameraConfig.renderer='egl' but the eglRenderer plugin did not load: use 'auto' or 'tiny'")
        if self.world.config.gui:
            self.renderer = "opengl"  # the GUI's own OpenGL context renders camera images too
        else:
            self.renderer = "egl" if self._egl_plugin >= 0 else "tiny"
        hardware = self.renderer in ("egl", "opengl") and self.config.renderer != "tiny"
        if self.renderer == "opengl" and self.config.renderer == "tiny":
            self.renderer = "tiny"
        self._renderer_flag = p.ER_BULLET_HARDWARE_OPENGL if hardware else p.ER_TINY_RENDERER
        cfg = self.config
        self._proj = p.computeProjectionMatrixFOV(cfg.fov_deg, cfg.width / cfg.height, cfg.near_m, cfg.far_m, physicsClientId=c)
        self._scene_view = p.computeViewMatrix(cfg.scene_eye_m, cfg.scene_target_m, [0, 0, 1], physicsClientId=c)
        return self.renderer

    def _load_egl(self) -> int:
        if self.world.config.gui:
            return -1  # the GUI already renders with OpenGL
        try:
            import importlib.util

            spec = importlib.util.find_spec("eglRenderer")
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            log.info("eglRenderer plugin not found; rendering with TinyRenderer (CPU)")
            return -1
        p, c = self.world.p, self.world.client
        with quiet_stdout():
            plugin = int(p.loadPlugin(spec.origin, "_eglRendererPlugin", physicsClientId=c))
        if plugin < 0:
            log.info("eglRenderer plugin did not load; rendering with TinyRenderer (CPU)")
        else:
            self.world.plugins.append(plugin)
            log.debug("rendering with the EGL plugin")
        return plugin

    def scene(self) -> np.ndarray:
        """The fixed scene camera: (height, width, 3) uint8 RGB."""
        return self._render(self._scene_view)

    def wrist(self, body: int, ee_link: int) -> np.ndarray:
        """The wrist camera on ``ee_link`` of ``body``, looking along the tool axis: (H, W, 3) uint8."""
        p, c = self.world.p, self.world.client
        state = p.getLinkState(body, ee_link, computeForwardKinematics=True, physicsClientId=c)
        position, orientation = np.array(state[4]), state[5]
        rot = np.array(p.getMatrixFromQuaternion(orientation)).reshape(3, 3)
        forward, up = rot[:, 2], rot[:, 0]  # tool z points out of the hand; x is "up" in the image
        eye = position + forward * self.config.wrist_offset_m
        view = p.computeViewMatrix(eye.tolist(), (eye + forward).tolist(), up.tolist(), physicsClientId=c)
        return self._render(view)

    def _render(self, view: object) -> np.ndarray:
        if self._quiet_renders > 0 and self.renderer == "egl":
            self._quiet_renders -= 1
            with quiet_stdout():
                return self._render_now(view)
        return self._render_now(view)

    def _render_now(self, view: object) -> np.ndarray:
        p, c, cfg = self.world.p, self.world.client, self.config
        _, _, rgba, _, _ = p.getCameraImage(
            cfg.width,
            cfg.height,
            viewMatrix=view,
            projectionMatrix=self._proj,
            renderer=self._renderer_flag,
            flags=p.ER_NO_SEGMENTATION_MASK,
            physicsClientId=c,
        )
        image = np.asarray(rgba, dtype=np.uint8).reshape(cfg.height, cfg.width, 4)
        return np.ascontiguousarray(image[:, :, :3])


def project_scene(points_m: np.ndarray, config: SceneCameraConfig | None = None) -> np.ndarray:
    """World points (..., 3) -> where the scene camera sees them, (..., 2) as (u, v) in [-1, 1]
    (u rightwards, v downwards over the image; pixel centres at -1 + (2i + 1) / size).

    The same look-at and perspective (OpenGL conventions) that ``computeViewMatrix`` and
    ``computeProjectionMatrixFOV`` build, in numpy, so training code can label image
    positions without a simulator.
    """
    cfg = config or SceneCameraConfig()
    eye, target = np.asarray(cfg.scene_eye_m, np.float64), np.asarray(cfg.scene_target_m, np.float64)
    forward = (target - eye) / np.linalg.norm(target - eye)
    side = np.cross(forward, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    up = np.cross(side, forward)
    rel = np.asarray(points_m, np.float64) - eye
    x, y, depth = rel @ side, rel @ up, rel @ forward  # camera frame: right, up, ahead
    f = 1.0 / np.tan(np.radians(cfg.fov_deg) / 2.0)
    aspect = cfg.width / cfg.height
    return np.stack([f / aspect * x / depth, -f * y / depth], axis=-1)
