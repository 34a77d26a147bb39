"""Templated video-QA data from the PyBullet sims: seeded scenes, two frames each, questions with short answers.

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

Questions (``KINDS``), answers in a closed vocabulary of words:

| kind     | template (training)                              | answer                      |
|----------|--------------------------------------------------|-----------------------------|
| colour   | what colour is the {shape}?  (shape unique)      | red, green, blue, ...       |
| shape    | what shape is the {colour} object?               | cube, cylinder, sphere      |
| count    | how many objects are there?                      | two, three, four            |
| exists   | is there a {colour} {shape}?                     | yes, no                     |
| relation | is the {a} left or right of the {b}?             | left, right (the image's)   |
| moved    | what moved? / what changed in the last ten       | {colour} {shape}, nothing   |
|          | seconds?                                         |                             |
| holding  | what is the robot holding?                       | {colour} {shape}, nothing   |

Left and right are the image's (the camera faces the robot: image left is the robot's
right, -y, as in ``sims/tasks/push.py``); a pair is only asked about when the two
objects are at least ``RELATION_MARGIN`` of the image width apart. ``REWORDED`` holds
other wordings of each question, never used in training, for a separate held-out row.

Dataset layout (``write_dataset``)::

    DATA/                       e.g. data/qa
      info.json                 image_size, renderer, splits {name: {first_seed, scenes}}, kinds, version
      {split}/scenes.jsonl      one scene per line: seed, shard, before, after (rows in the shard's
                                images), objects [{colour, shape, before, after (xyz m), pixel_before,
                                pixel_after (u, v px)}], moved, held (object index or null), arm
      {split}/shard_00000.npz   images (N, S, S, 3) uint8: each scene's frames (one row when unmoved)

Questions are not stored: they are drawn from the scene records when training or
evaluating (``questions_for``), so every epoch asks new ones about the same images.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.errors import ConfigError

__all__ = [
    "KINDS", "TEMPLATES", "REWORDED", "COUNT_WORDS", "TRAIN_SEED", "HELD_OUT_SEED", "RELATION_MARGIN",
    "QAObject", "Scene", "Question", "SceneConfig", "SceneMaker", "questions_for", "make_question",
    "write_dataset", "load_split", "vocabulary",
]

log = logging.getLogger(__name__)

KINDS = ("colour", "shape", "count", "exists", "relation", "moved", "holding")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "colour": ("what colour is the {shape}?",),
    "shape": ("what shape is the {colour} object?",),
    "count": ("how many objects are there?",),
    "exists": ("is there a {colour} {shape}?",),
    "relation": ("is the {a} left or right of the {b}?",),
    "moved": ("what moved?", "what changed in the last ten seconds?"),  # memory holds ~10 s (10 frames, 1 s apart)
    "holding": ("what is the robot holding?",),
}
# Held-out wordings: never trained on; words the model does not know become <unk>.
REWORDED: dict[str, tuple[str, ...]] = {
    "colour": ("which colour does the {shape} have?",),
    "shape": ("which shape has the {colour} object?",),
    "count": ("how many objects do you see?",),
    "exists": ("do you see a {colour} {shape}?",),
    "relation": ("is the {a} on the left or on the right of the {b}?",),
    "moved": ("which object moved?",),
    "holding": ("what does the robot hold?",),
}
COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
TRAIN_SEED = 0  # training scenes use seeds 0 .. scenes-1
HELD_OUT_SEED = 1_000_000  # evaluation scenes start here: layouts never seen in training
RELATION_MARGIN = 0.06  # fraction of the image width two objects must be apart for left / right
MIN_MOVE_M = 0.1  # a moved object lands at least this far from where it was
HELD_LIFT_M = 0.01  # an object touching the robot this far above its resting height is held
TASK_CONTROL_HZ = 20  # task scenes run the scripted expert at the demo's control rate
VERSION = 1


@dataclass
class QAObject:
    colour: str
    shape: str
    before: tuple[float, float, float]  # metres, world frame
    after: tuple[float, float, float]
    pixel_before: tuple[float, float]  # (u, v) in the image, pixels
    pixel_after: tuple[float, float]

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class Scene:
    seed: int
    objects: list[QAObject]
    moved: int | None = None  # index of the object moved between the frames
    held: int | None = None  # index of the object in the gripper (both frames)
    arm: str = "home"  # home | away | holding
    image_size: int = 96
    # where the frames are stored (set by the dataset writer / reader)
    shard: int = -1
    before: int = -1
    after: int = -1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Scene:
        objects = [QAObject(o["colour"], o["shape"], tuple(o["before"]), tuple(o["after"]), tuple(o["pixel_before"]),
                            tuple(o["pixel_after"])) for o in d["objects"]]
        return cls(**{**d, "objects": objects})


@dataclass
class Question:
    kind: str
    text: str
    answer: str


# -- questions -----------------------------------------------------------------------------------

def make_question(scene: Scene, kind: str, rng: np.random.Generator, *, reworded: bool = False) -> Question | None:
    """One question of ``kind`` about ``scene`` (its last frame; ``moved`` compares the two), or None
    when the scene cannot pose it unambiguously (no unique shape, no pair far enough apart)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown question kind {kind!r}: expected one of {', '.join(KINDS)}")
    templates = (REWORDED if reworded else TEMPLATES)[kind]
    template = templates[int(rng.integers(len(templates)))]
    objs = scene.objects
    if kind == "colour":
        shapes = [o.shape for o in objs]
        unique = [o for o in objs if shapes.count(o.shape) == 1]
        if not unique:
            return None
        o = unique[int(rng.integers(len(unique)))]
        return Question(kind, template.format(shape=o.shape), o.colour)
    if kind == "shape":
        o = objs[int(rng.integers(len(objs)))]
        return Question(kind, template.format(colour=o.colour), o.shape)
    if kind == "count":
        return Question(kind, template, COUNT_WORDS[len(objs)])
    if kind == "exists":
        from sims.tasks.base import COLOURS, SHAPES

        present = {(o.colour, o.shape) for o in objs}
        if rng.random() < 0.5:
            colour, shape = sorted(present)[int(rng.integers(len(present)))]
            return Question(kind, template.format(colour=colour, shape=shape), "yes")
        if rng.random() < 0.5:  # hard negative: a colour that is there, on another shape
            o = objs[int(rng.integers(len(objs)))]
            absent = [(o.colour, s) for s in SHAPES if (o.colour, s) not in present]
        else:
            absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
        colour, shape = absent[int(rng.integers(len(absent)))]
        return Question(kind, template.format(colour=colour, shape=shape), "no")
    if kind == "relation":
        margin = RELATION_MARGIN * scene.image_size
        pairs = [(i, j) for i in range(len(objs)) for j in range(len(objs))
                 if i != j and abs(objs[i].pixel_after[0] - objs[j].pixel_after[0]) >= margin]
        if not pairs:
            return None
        i, j = pairs[int(rng.integers(len(pairs)))]
        answer = "left" if objs[i].pixel_after[0] < objs[j].pixel_after[0] else "right"
        return Question(kind, template.format(a=objs[i].name, b=objs[j].name), answer)
    if kind == "moved":
        return Question(kind, template, objs[scene.moved].name if scene.moved is not None else "nothing")
    # holding
    return Question(kind, template, objs[scene.held].name if scene.held is not None else "nothing")


def questions_for(
    scene: Scene, rng: np.random.Generator, n: int, *, kinds: tuple[str, ...] = KINDS, reworded: bool = False
) -> list[Question]:
    """Up to ``n`` questions of distinct kinds (drawn in random order) that the scene can pose."""
    out: list[Question] = []
    for k in rng.permutation(len(kinds)):
        q = make_question(scene, kinds[int(k)], rng, reworded=reworded)
        if q is not None:
            out.append(q)
        if len(out) == n:
            break
    return out


def vocabulary() -> list[str]:
    """Every word of the training templates and answers, sorted (the model's word list)."""
    from policies.nano_qa import split_words
    from sims.tasks.base import COLOURS, SHAPES

    words: set[str] = set(COLOURS) | set(SHAPES) | set(COUNT_WORDS.values()) | {"yes", "no", "left", "right", "nothing"}
    for templates in TEMPLATES.values():
        for t in templates:
            words |= set(split_words(t.format(shape="", colour="", a="", b="")))
    return sorted(words)


# -- scenes --------------------------------------------------------------------------------------

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


def all_visible(world: Any, eye: tuple[float, float, float], bodies: list[int]) -> bool:
    """Each body is hit first by at least 2 of 5 rays from the camera at ``eye`` (centre, top, three sides)."""
    p, c = world.p, world.client
    offsets = [(0, 0, 0), (0, 0, 0.015), (0, 0.012, 0), (0, -0.012, 0), (0.012, 0, 0.008)]
    for body in bodies:
        centre = np.array(world.position(body))
        ends = [(centre + np.array(off)).tolist() for off in offsets]
        hits = p.rayTestBatch([list(eye)] * len(ends), ends, physicsClientId=c)
        if sum(h[0] == body for h in hits) < 2:
            return False
    return True


def held_object(env: Any) -> int | None:
    """Index (in ``env.task.objects``) of the object the gripper holds: touching the robot and lifted
    off the floor by more than ``HELD_LIFT_M``; None when it holds nothing."""
    for i, o in enumerate(env.task.objects):
        if env.world.position(o.body)[2] > o.size_m / 2 + HELD_LIFT_M and env.world.in_contact(env.robot.body, o.body):
            return i
    return None


def image_pixel(xyz: tuple[float, float, float], size: int) -> tuple[float, float]:
    """World point -> (u, v) pixel in the square scene camera of ``size`` px (u grows to the image's right)."""
    from sims.camera import SceneCameraConfig, project_scene

    uv = project_scene(np.asarray(xyz), SceneCameraConfig(width=size, height=size))
    return float((uv[0] + 1) / 2 * size), float((uv[1] + 1) / 2 * size)


# -- the dataset on disk -------------------------------------------------------------------------

def write_dataset(
    root: str | Path,
    split: str,
    scenes: int,
    first_seed: int,
    config: SceneConfig,
    *,
    shard_size: int = 250,
    on_scene: Callable[[Scene], None] | None = None,
) -> int:
    """Render scenes ``first_seed`` .. ``first_seed + scenes - 1`` into ``root/split``; resumes after
    the last complete shard. Returns the number of scenes in the split."""
    root = Path(root)
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    info_path = root / "info.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}
    if info and (info.get("image_size") != config.image_size or info.get("version") != VERSION):
        raise ConfigError(f"{root} holds a dataset of image size {info.get('image_size')} (version {info.get('version')}); "
                          f"give another --out or delete it")
    if info and info.get("config", {}).get("p_task", 0.0) != config.p_task:
        raise ConfigError(f"{root} was made with p_task {info['config'].get('p_task', 0.0)}, not {config.p_task}: "
                          f"give the same --p-task, another --out, or delete it")
    index_path = folder / "scenes.jsonl"
    done = index_path.read_text().splitlines() if index_path.exists() else []
    if done and json.loads(done[0])["seed"] != first_seed:
        raise ConfigError(f"{folder} starts at seed {json.loads(done[0])['seed']}, not {first_seed}: give another --out")
    shard = len(list(folder.glob("shard_*.npz")))
    count = len(done)
    with SceneMaker(config) as maker:
        while count < scenes:
            batch = min(shard_size, scenes - count)
            images: list[np.ndarray] = []
            records: list[Scene] = []
            for seed in range(first_seed + count, first_seed + count + batch):
                scene, (a, b) = maker.make(seed)
                scene.shard, scene.before = shard, len(images)
                images.append(a)
                if b is not a:
                    images.append(b)
                scene.after = len(images) - 1
                records.append(scene)
                if on_scene is not None:
                    on_scene(scene)
            np.savez_compressed(folder / f"shard_{shard:05d}.npz", images=np.stack(images))
            with index_path.open("a") as f:  # written after its shard: a crash leaves no dangling lines
                f.writelines(json.dumps(s.to_json()) + "\n" for s in records)
            count += batch
            shard += 1
    info.update({"image_size": config.image_size, "renderer": config.renderer, "version": VERSION, "kinds": list(KINDS),
                 "config": asdict(config)})
    info.setdefault("splits", {})[split] = {"first_seed": first_seed, "scenes": count}
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    return count


def load_split(root: str | Path, split: str) -> tuple[list[Scene], list[np.ndarray]]:
    """-> (scenes, per-shard image arrays); a scene's frames are ``shards[s.shard][[s.before, s.after]]``.
    ``root`` may name several dataset folders, comma-separated (e.g. made by collectors in parallel):
    their scenes are joined, each must hold ``split``, and all must share one image size."""
    if isinstance(root, str) and "," in root:
        scenes: list[Scene] = []
        shards: list[np.ndarray] = []
        for one in (r.strip() for r in root.split(",") if r.strip()):
            more, more_shards = load_split(one, split)
            scenes += [replace(s, shard=s.shard + len(shards)) for s in more]
            shards += more_shards
        if len({s.shape[1:] for s in shards}) > 1:
            raise ConfigError(f"{root}: the folders hold images of different sizes; collect them with one --size")
        return scenes, shards
    folder = Path(root) / split
    index_path = folder / "scenes.jsonl"
    if not index_path.exists():
        raise ConfigError(f"no QA data at {folder}: expected {index_path} (make it with `agentrt collect-qa --out {root}`)")
    scenes = [Scene.from_json(json.loads(line)) for line in index_path.read_text().splitlines()]
    shards = []
    for i in range(max((s.shard for s in scenes), default=-1) + 1):
        with np.load(folder / f"shard_{i:05d}.npz") as z:
            shards.append(z["images"])
    return scenes, shards


def iter_scenes(first_seed: int, count: int, config: SceneConfig) -> Iterator[tuple[Scene, list[np.ndarray]]]:
    """Render scenes on the fly (evaluation on unseen seeds needs no dataset on disk)."""
    with SceneMaker(config) as maker:
        for seed in range(first_seed, first_seed + count):
            yield maker.make(seed)
