"""Episode videos people can watch: a viewer camera at 384x288 (a three-quarter view of the
workspace), rendered in its own process.

The policy camera is small (64-128 px) because the policy reads it; enlarged for a video it is
blocky. The viewer renders the same scene at a watchable size without slowing the control loop:
each video frame the loop sends only the scene's state (every body's pose and joint positions, a
few hundred bytes, `scene_snapshot`) to a separate process, which holds its own copy of the world
(the same task and seed rebuild the same scene), poses it, renders it and writes the MP4. The loop
only reads PyBullet state, so the episode, and what the policy sees, are the same with the viewer
as without it (tests/sims/test_viewer.py).

    with Viewer(ViewerConfig(width=384, height=288)) as viewer:
        video = viewer.episode("runs/reach.mp4", fps=10.0)
        run_episode(env, clock, source, seed=0, frame_every=2, video=video)
        video.close()
    # leaving the block waits until every file is written

A snapshot that finds the viewer's queue full is dropped in real time (``dropped`` counts it: the
loop never waits) and waited for in lockstep (deterministic runs keep every frame).
``ViewerConfig(process=False)`` renders in the caller's process instead: the reference
`agentrt bench sim` measures the separate process against (the loop pays for every image).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
from dataclasses import dataclass, replace
from typing import Any

from agentrt.errors import ConfigError, RobotError
from sims.camera import RENDERERS, Cameras, SceneCameraConfig
from sims.env import SimEnv
from sims.video import VideoWriter
from sims.world import World

__all__ = ["ViewerConfig", "Viewer", "ViewerVideo", "scene_snapshot", "apply_snapshot"]

log = logging.getLogger(__name__)

# every body: (id, base position, base orientation xyzw, joint positions)
Snapshot = list[tuple[int, tuple[float, ...], tuple[float, ...], tuple[float, ...]]]
PUT_WAIT_S = 0.5  # lockstep: how often a wait for room in the queue checks the viewer is alive
CLOSE_WAIT_S = 120.0  # at close: how long the viewer may take to render what is queued


@dataclass
class ViewerConfig:
    width: int = 384
    height: int = 288
    renderer: str = "tiny"  # in the viewer's process: tiny (CPU) | egl | auto
    # a three-quarter view of the robot, the objects and the tray: for people, not the policy's camera
    eye_m: tuple[float, float, float] = (1.1, 0.35, 0.6)
    target_m: tuple[float, float, float] = (0.45, 0.0, 0.15)
    fov_deg: float = 55.0
    process: bool = True  # False: render in the caller's process (the slow reference)
    queue_frames: int = 256  # snapshots waiting for the viewer; lockstep waits past it
    behind_frames: int = 16  # real time drops a snapshot when this many wait (about 1.6 s at 10 frames/s)
    nice: int = 10  # the viewer process's niceness: on a busy CPU the control loop goes first

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 64 <= value <= 1920):
                raise ConfigError(f"ViewerConfig.{name}: expected an int in 64..1920 pixels, got {value!r}")
        if self.renderer not in RENDERERS:
            raise ConfigError(f"ViewerConfig.renderer: expected one of {', '.join(RENDERERS)}, got {self.renderer!r}")
        if not 0 <= self.nice <= 19:
            raise ConfigError(f"ViewerConfig.nice: expected 0..19, got {self.nice}")
        if not (1 <= self.behind_frames <= self.queue_frames):
            raise ConfigError(f"ViewerConfig.behind_frames, queue_frames: expected 1 <= behind_frames <= queue_frames, "
                              f"got {self.behind_frames}, {self.queue_frames}")

    def camera(self) -> SceneCameraConfig:
        return SceneCameraConfig(width=self.width, height=self.height, renderer=self.renderer, fov_deg=self.fov_deg,
                                 scene_eye_m=self.eye_m, scene_target_m=self.target_m)


def scene_snapshot(world: World) -> Snapshot:
    """Every body's base pose and joint positions: reads only, so stepping is unchanged."""
    p, c = world.p, world.client
    out: Snapshot = []
    for index in range(p.getNumBodies(physicsClientId=c)):
        body = p.getBodyUniqueId(index, physicsClientId=c)
        position, orientation = p.getBasePositionAndOrientation(body, physicsClientId=c)
        joints = p.getNumJoints(body, physicsClientId=c)
        angles = tuple(s[0] for s in p.getJointStates(body, range(joints), physicsClientId=c)) if joints else ()
        out.append((int(body), tuple(position), tuple(orientation), angles))
    return out


def apply_snapshot(world: World, snapshot: Snapshot) -> None:
    """Pose ``world`` (the same scene, rebuilt from the same task and seed) like ``snapshot``."""
    p, c = world.p, world.client
    for body, position, orientation, angles in snapshot:
        p.resetBasePositionAndOrientation(body, position, orientation, physicsClientId=c)
        for joint, angle in enumerate(angles):
            p.resetJointState(body, joint, angle, physicsClientId=c)


class ViewerVideo:
    """One episode's MP4 from the viewer camera: ``begin`` after the reset, ``show`` per video frame."""

    def __init__(self, viewer: Viewer, path: str, fps: float) -> None:
        self.viewer, self.path, self.fps = viewer, path, fps
        self._begun = False

    def begin(self, env: SimEnv, seed: int | None) -> None:
        if seed is None:
            raise ConfigError("a viewer video needs the episode's seed: the viewer rebuilds the scene from it")
        self.viewer.begin(self, env, seed)
        self._begun = True

    def show(self, env: SimEnv, *, wait: bool) -> None:
        self.viewer.show(env, wait=wait)

    def close(self) -> None:
        if self._begun:
            self.viewer.end()
            self._begun = False


class Viewer:
    """The viewer camera and its process (one for many episodes); see the module docstring.

    ``written``: (path, frames) of each finished MP4 (in the order written; complete after ``close``);
    ``dropped``: snapshots dropped because the viewer was behind (real time only).
    """

    def __init__(self, config: ViewerConfig | None = None) -> None:
        self.config = config or ViewerConfig()
        self.written: list[tuple[str, int]] = []
        self.dropped = 0
        self._proc: Any = None
        self._inbox: Any = None
        self._outbox: Any = None
        self._cameras: Cameras | None = None  # process=False: a second camera on the caller's world
        self._writer: VideoWriter | None = None
        self._error = ""  # the viewer process's last error, one line

    def episode(self, path: str, fps: float) -> ViewerVideo:
        return ViewerVideo(self, path, fps)

    # ---- what ViewerVideo calls ----------------------------------------------------------------

    def begin(self, video: ViewerVideo, env: SimEnv, seed: int) -> None:
        if not self.config.process:
            self._cameras = Cameras(env.world, self.config.camera())
            self._cameras.setup()
            self._writer = VideoWriter(video.path, fps=video.fps, min_side=0)
            return
        self._start()
        env_config = replace(env.config, camera=self.config.camera(), world=replace(env.config.world, gui=False))
        self._put(("begin", env_config, seed, video.path, video.fps), wait=True)

    def show(self, env: SimEnv, *, wait: bool) -> None:
        if self._writer is not None and self._cameras is not None:
            self._writer.write(self._cameras.scene())
            return
        if not self._put(("show", scene_snapshot(env.world)), wait=wait):
            self.dropped += 1

    def end(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self.written.append((str(self._writer.path), self._writer.frames))
            self._writer = self._cameras = None
            return
        self._put(("end",), wait=True)

    # ---- the process ---------------------------------------------------------------------------

    def _start(self) -> None:
        if self._proc is not None:
            return
        context = mp.get_context("spawn")  # never fork a process that holds PyBullet, torch or threads
        self._inbox = context.Queue(maxsize=self.config.queue_frames)
        self._outbox = context.Queue()
        self._proc = context.Process(target=_viewer_main, args=(self._inbox, self._outbox, self.config.nice),
                                     name="agentrt-viewer", daemon=True)
        self._proc.start()

    def _put(self, item: tuple[Any, ...], *, wait: bool) -> bool:
        if not wait and self._inbox.qsize() >= self.config.behind_frames:
            return False  # the viewer is behind: real time never waits for it
        while True:
            try:
                self._inbox.put(item, block=wait, timeout=PUT_WAIT_S if wait else None)
                return True
            except queue.Full:
                if not wait:
                    return False
                self._collect()
                if not self._proc.is_alive():
                    raise RobotError(f"the viewer process stopped: {self._error or 'no reason given'}") from None

    def _collect(self) -> None:
        while True:
            try:
                kind, *rest = self._outbox.get_nowait()
            except queue.Empty:
                return
            if kind == "written":
                self.written.append((str(rest[0]), int(rest[1])))
            else:
                self._error = str(rest[0])

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Wait (up to ``wait_s``) until the viewer has written every video, then end its process."""
        if self._writer is not None:
            self.end()
        if self._proc is None:
            return
        try:
            if self._proc.is_alive():
                self._inbox.put(("close",), timeout=wait_s)
            self._proc.join(wait_s)
        except queue.Full:
            pass
        finally:
            if self._proc.is_alive():
                log.warning("the viewer process did not finish within %.1f s: stopped (its last video is cut)", wait_s)
                self._proc.terminate()
                self._proc.join(5)
            self._collect()
            self._proc = None
        if self._error:
            log.warning("the viewer process failed: %s", self._error)

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _viewer_main(inbox: Any, outbox: Any, nice: int) -> None:
    """The viewer process: rebuild each episode's scene, pose it per snapshot, render, write the MP4."""
    os.nice(nice)  # a video frame can wait; the control loop's step cannot
    env: SimEnv | None = None
    writer: VideoWriter | None = None
    try:
        while True:
            try:
                kind, *rest = inbox.get(timeout=1.0)
            except queue.Empty:
                parent = mp.parent_process()
                if parent is not None and not parent.is_alive():
                    return  # the loop's process is gone (even SIGKILL): no viewer outlives it
                continue
            if kind == "begin":
                env_config, seed, path, fps = rest
                if env is None or env.config != env_config:
                    if env is not None:
                        env.close()
                    env = SimEnv(env_config)
                env.reset(seed=seed)
                writer = VideoWriter(path, fps=fps, min_side=0)
            elif kind == "show" and env is not None and writer is not None:
                apply_snapshot(env.world, rest[0])
                writer.write(env.render("scene"))
            elif kind == "end" and writer is not None:
                writer.close()
                outbox.put(("written", str(writer.path), writer.frames))
                writer = None
            elif kind == "close":
                return
    except Exception as exc:  # one line for the caller; the loop goes on without video
        outbox.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        if writer is not None:
            writer.close()
        if env is not None:
            env.close()

