"""Seeded video-QA scenes from the PyBullet sims: two frames each, what stands where read from sim state.

A scene (seed s) holds 2-4 objects in distinct task colours (``sims.tasks.base.COLOURS`` /
``SHAPES``) on the floor in front of the Panda, seen by the scene camera (renderer ``tiny``).
The arm is at home, posed somewhere over the table, or holding one of the objects in its
closed gripper; in half the scenes one object (never the held one) is moved between the
two frames. Nothing runs physics: bodies and joints are placed with reset calls, so a
scene costs one or two renders (~25 ms each), and the same seed gives the same images.
Every answer is read back from sim state (body positions, projected to the image).

A share ``SceneConfig.p_task`` of the scenes is a moment of a task episode instead (reach,
push, pick-and-place with its tray: what launch/sim_qa.yaml shows), the scripted expert run
with physics up to a random step; its "before" frame is 0-10 s earlier when exactly one
object moved in between (``SceneMaker._task_scene``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentrt.errors import ConfigError
from policies.qa.data.records import QAObject, Scene
from policies.qa.data.sim_view import all_visible, held_object, image_pixel

__all__ = ["SceneConfig", "SceneMaker", "MIN_MOVE_M", "TASK_CONTROL_HZ"]

MIN_MOVE_M = 0.1  # a moved object lands at least this far from where it was
TASK_CONTROL_HZ = 20  # task scenes run the scripted expert at the demo's control rate


@dataclass
class SceneConfig:
    image_size: int = 96  # the scene camera, square; objects are ~6 px across at 96
    renderer: str = "tiny"  # the CPU TinyRenderer: deterministic and needs no GL
    min_objects: int = 2
    max_objects: int = 4
    p_moved: float = 0.5  # share of scenes with an object moved between the frames
    p_holding: float = 0.35  # share of scenes with the robot holding an object
    p_away: float = 0.3  # share with the empty arm posed over the table (the rest: at home)
    # Share of scenes taken from a task episode instead (reach, push, pick-and-place: what `agentrt demo`
    # and launch/sim_qa.yaml show, the tray included) at a moment of its scripted expert's run.
    # 0 keeps every seed's scene as it was without task scenes (the held-out evaluation uses 0).
    p_task: float = 0.0

    def __post_init__(self) -> None:
        if not 32 <= self.image_size <= 256:
            raise ConfigError(f"SceneConfig.image_size: expected 32..256 pixels, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects <= 5:
            raise ConfigError(f"SceneConfig: expected 1 <= min_objects <= max_objects <= 5, got {self.min_objects}, {self.max_objects}")
        if self.p_holding + self.p_away > 1:
            raise ConfigError(f"SceneConfig: p_holding + p_away must be <= 1, got {self.p_holding} + {self.p_away}")
        if not 0 <= self.p_task <= 1:
            raise ConfigError(f"SceneConfig.p_task: expected a share in 0..1, got {self.p_task}")


@dataclass
class _Placed:
    body: int
    colour: str
    shape: str
    before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pixel_before: tuple[float, float] = (0.0, 0.0)


@dataclass
class SceneMaker:
    """Builds and renders scenes in one PyBullet world (kept across scenes; bodies are swapped).

    >>> with SceneMaker(SceneConfig()) as maker:
    ...     scene, frames = maker.make(seed=3)   # frames: [before, after] (H, W, 3) uint8
    """

    config: SceneConfig = field(default_factory=SceneConfig)

    def __post_init__(self) -> None:
        self._world: Any = None
        self._robot: Any = None
        self._cameras: Any = None
        self._bodies: list[int] = []
        self._task_envs: dict[str, Any] = {}  # task name -> SimEnv, for task scenes (physics runs there)

    def __enter__(self) -> SceneMaker:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        if self._world is not None:
            return
        from sims.camera import Cameras, SceneCameraConfig
        from sims.robot import RobotConfig
        from sims.sim_robot import SimRobot
        from sims.world import World, WorldConfig

        self._world = World(WorldConfig())
        self._robot = SimRobot(RobotConfig(robot="panda"), self._world)
        self._robot.connect()
        size = self.config.image_size
        self._cameras = Cameras(self._world, SceneCameraConfig(width=size, height=size, renderer=self.config.renderer))
        self._cameras.setup()

    def close(self) -> None:
        if self._world is not None:
            self._world.disconnect()
        self._world = self._robot = self._cameras = None
        for env in self._task_envs.values():
            env.close()
        self._task_envs = {}

    def pixel(self, xyz: tuple[float, float, float]) -> tuple[float, float]:
        """World point -> (u, v) pixel in the scene camera (u grows to the image's right)."""
        return image_pixel(xyz, self.config.image_size)

    def make(self, seed: int) -> tuple[Scene, list[np.ndarray]]:
        """The scene of ``seed`` and its frames [before, after] (the same array twice when nothing moved)."""
        from sims.tasks.base import COLOURS, SHAPES, ScenePlanner

        # its own generator, so that without task scenes every seed gives the scene it always gave
        if self.config.p_task and np.random.default_rng([seed, 1]).random() < self.config.p_task:
            made = self._task_scene(seed)
            if made is not None:
                return made
        self.connect()
        cfg, world, p = self.config, self._world, self._world.p
        rng = np.random.default_rng(seed)
        for body in self._bodies:
            p.removeBody(body, physicsClientId=world.client)
        self._bodies = []
        self._pose_arm(None, open_gripper=True)  # home
        planner = ScenePlanner(rng)
        n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        colours = planner.colours(n)
        placed: list[_Placed] = []
        for colour in colours:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            xy = planner.place(0.06)
            size = 0.04
            yaw = float(rng.uniform(-math.pi, math.pi))
            body = world.add_object(shape, size, COLOURS[colour], (float(xy[0]), float(xy[1]), size / 2), yaw_rad=yaw)
            self._bodies.append(body)
            placed.append(_Placed(body, colour, shape))
        u = rng.random()
        arm = "holding" if u < cfg.p_holding else "away" if u < cfg.p_holding + cfg.p_away else "home"
        held: int | None = None
        if arm != "home":
            for _ in range(10):  # an arm pose that hides no object (rays from the camera)
                tcp = np.array([rng.uniform(0.4, 0.66), rng.uniform(-0.22, 0.22), rng.uniform(0.1, 0.22)])
                if arm == "holding":
                    held = 0
                    self._pose_arm(tcp, open_gripper=False)
                    self._set_pose(placed[0].body, self._tool_point(), float(rng.uniform(-0.3, 0.3)))
                else:
                    self._pose_arm(tcp, open_gripper=bool(rng.random() < 0.5))
                if self._all_visible(placed):
                    break
            else:
                arm, held = "home", None
                self._pose_arm(None, open_gripper=True)
                self._restore_floor(placed[0], planner)
        for o in placed:
            o.before = world.position(o.body)
            o.pixel_before = self.pixel(o.before)
        frame_a = self._cameras.scene()
        moved: int | None = None
        frame_b = frame_a
        candidates = [i for i in range(len(placed)) if i != held]
        if candidates and rng.random() < cfg.p_moved:
            i = candidates[int(rng.integers(len(candidates)))]
            old = np.array(placed[i].before[:2])
            target: np.ndarray | None = None
            for _ in range(20):
                target = planner.place(0.06)
                if np.linalg.norm(target - old) >= MIN_MOVE_M:
                    break
                planner.taken.pop()
            else:
                target = None
            if target is not None:
                self._set_pose(placed[i].body, (float(target[0]), float(target[1]), 0.02), float(rng.uniform(-math.pi, math.pi)))
                if self._all_visible(placed):
                    moved = i
                    frame_b = self._cameras.scene()
                else:
                    self._set_pose(placed[i].body, placed[i].before, 0.0)
        objects = []
        for o in placed:
            after = world.position(o.body)
            objects.append(QAObject(o.colour, o.shape, o.before, after, o.pixel_before, self.pixel(after)))
        scene = Scene(seed=seed, objects=objects, moved=moved, held=held, arm=arm, image_size=cfg.image_size)
        return scene, [frame_a, frame_b]

    def _task_scene(self, seed: int) -> tuple[Scene, list[np.ndarray]] | None:
        """A moment of a task episode (task and scene from ``seed``): the scripted expert runs up to a
        random step; the frame there is "after", one 0-10 s earlier is "before" when exactly one object
        moved at least ``MIN_MOVE_M`` in between (the carried or pushed one). None when some object
        stays hidden behind the arm to the episode's end (the caller makes an ordinary scene)."""
        from sims.robot import Action
        from sims.tasks import TASKS

        rng = np.random.default_rng([seed, 2])
        name = sorted(TASKS)[int(rng.integers(len(TASKS)))]
        env = self._task_env(name)
        env.reset(seed=seed)
        expert = env.expert()
        end = int(rng.integers(0, env.task.max_steps))
        start = max(0, end - int(rng.integers(0, 10 * TASK_CONTROL_HZ)))
        obs = env.robot.get_observation()
        size = self.config.image_size
        before: tuple[np.ndarray, list[tuple[float, float, float]]] | None = None
        for step in range(env.task.max_steps + 40):  # past the end: the arm may still hide an object
            if step >= end and all_visible(env.world, env.config.camera.scene_eye_m, [o.body for o in env.task.objects]):
                break
            if step == start:
                before = env.render("scene"), [env.world.position(o.body) for o in env.task.objects]
            obs = env.step(Action("ee_delta", expert.act(obs))).observation
        else:
            return None
        after_frame = env.render("scene")
        after = [env.world.position(o.body) for o in env.task.objects]
        moved = None
        frames = [after_frame, after_frame]
        if before is not None:
            far = [i for i, (a, b) in enumerate(zip(before[1], after, strict=True))
                   if np.linalg.norm(np.subtract(a[:2], b[:2])) >= MIN_MOVE_M]
            if len(far) == 1:
                moved, frames = far[0], [before[0], after_frame]
        starts = before[1] if moved is not None and before is not None else after
        objects = [QAObject(o.colour, o.shape, a, b, image_pixel(a, size), image_pixel(b, size))
                   for o, a, b in zip(env.task.objects, starts, after, strict=True)]
        scene = Scene(seed=seed, objects=objects, moved=moved, held=held_object(env), arm=f"task:{name}", image_size=size)
        return scene, frames

    def _task_env(self, name: str) -> Any:
        if name not in self._task_envs:
            from sims.camera import SceneCameraConfig
            from sims.env import SimEnv, SimEnvConfig
            from sims.robot import RobotConfig

            size = self.config.image_size
            camera = SceneCameraConfig(width=size, height=size, renderer=self.config.renderer)
            env = SimEnv(SimEnvConfig(task=name, camera=camera, robot=RobotConfig(control_hz=TASK_CONTROL_HZ)))
            env.connect()
            self._task_envs[name] = env
        return self._task_envs[name]

    # -- arm and bodies (reset calls only: no physics step, so nothing drifts) --------------------
    def _pose_arm(self, tcp: np.ndarray | None, *, open_gripper: bool) -> None:
        robot, p, c = self._robot, self._world.p, self._world.client
        d = robot.description
        for j, q in zip(d.arm_joints, d.home, strict=True):
            p.resetJointState(robot.body, j, q, 0.0, physicsClientId=c)
        if tcp is not None:
            orn = p.getQuaternionFromEuler(d.ee_down_euler)
            for _ in range(3):  # IK from the current joints; a few rounds converge on the point
                solution = p.calculateInverseKinematics(robot.body, d.ee_link, tcp.tolist(), orn,
                                                        maxNumIterations=50, physicsClientId=c)
                for j, q in zip(d.arm_joints, solution[: len(d.arm_joints)], strict=True):
                    p.resetJointState(robot.body, j, q, 0.0, physicsClientId=c)
        finger = d.gripper_open if open_gripper else 0.02  # closed on a 4 cm object
        for j in d.gripper_joints:
            p.resetJointState(robot.body, j, finger, 0.0, physicsClientId=c)

    def _tool_point(self) -> tuple[float, float, float]:
        pose = self._robot.get_observation().ee_pose
        return float(pose[0]), float(pose[1]), float(pose[2])

    def _set_pose(self, body: int, xyz: tuple[float, float, float], yaw: float) -> None:
        p = self._world.p
        p.resetBasePositionAndOrientation(body, xyz, p.getQuaternionFromEuler([0, 0, yaw]), physicsClientId=self._world.client)

    def _restore_floor(self, o: _Placed, planner: Any) -> None:
        xy = planner.taken[0][0]  # the first placement was this object's
        self._set_pose(o.body, (float(xy[0]), float(xy[1]), 0.02), 0.0)

    def _all_visible(self, placed: list[_Placed]) -> bool:
        return all_visible(self._world, self._cameras.config.scene_eye_m, [o.body for o in placed])
