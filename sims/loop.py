"""The episode loop shared by `agentrt sim` and the sim node, for both clocks.

One tick:

1. get actions: lockstep waits until the current chunk has a step (asking the
   source for one); real time only takes what has arrived;
2. step the env with the chunk's next step (``None`` when it ran out: the
   watchdog decides when the robot holds); a bad action is counted, the robot
   holds, the loop goes on;
3. observe: every tick a state; a rendered frame every ``frame_every`` ticks in
   real time, and in lockstep exactly when the source must plan a new chunk
   (video frames, from the viewer camera of `sims.viewer`, every ``frame_every`` ticks in both);
4. wait for the next tick (real time sleeps; lockstep does not).

Steps 2 and 3 are ``EpisodeStepper.step``, the one loop body: ``run_episode`` drives it
in-process (`agentrt sim`, `agentrt eval`, collection) with an ``ActionSource``
(the scripted expert, ``ExpertSource``, or a policy) doing 1 and a ``Clock``
doing 4; the sim node (``sims.node.SimNode``) drives it from its node events
(chunks arriving on its input, its timer ticks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from agentrt.chunks import ChunkExecutor, ChunkQueue
from agentrt.errors import ActionError
from sims.clock import Clock
from sims.env import SimEnv
from sims.experts import WaypointExpert
from sims.robot import RobotObservation

__all__ = ["StepRecord", "Observer", "EpisodeVideo", "ActionSource", "ExpertSource", "EpisodeResult", "EpisodeStepper",
           "run_episode", "episode_video_path"]


@dataclass
class StepRecord:
    """What the loop observed at one tick."""

    step: int  # control steps taken this episode (0: right after reset)
    observation: RobotObservation
    image: np.ndarray | None  # scene camera (H, W, 3) uint8 when the source should get a frame this tick
    t_capture_ns: int  # time.monotonic_ns() when the image (or state) was taken
    needs_actions: bool  # the current chunk is used up: a new plan is wanted
    wrist: np.ndarray | None = None  # wrist camera (H, W, 3) uint8 beside ``image``, when the source wants it


class Observer(Protocol):
    """What an `EpisodeStepper` shows each tick to: the in-process source, or the sim node (which publishes it)."""

    wants_frames: bool

    def observe(self, tick: StepRecord) -> None: ...


class EpisodeVideo(Protocol):
    """An episode's video from a viewer camera (`sims.viewer.ViewerVideo`): ``begin`` after the reset,
    ``show`` every ``frame_every`` steps (``wait``: lockstep, where no frame may be dropped)."""

    def begin(self, env: SimEnv, seed: int | None) -> None: ...

    def show(self, env: SimEnv, *, wait: bool) -> None: ...


class ActionSource(Observer, Protocol):
    """Where chunks come from in `run_episode`. ``fetch`` puts any that have arrived into the queue; with
    ``wait=True`` it blocks until one has (or ``stop`` is set)."""

    def fetch(self, queue: ChunkQueue, *, wait: bool, stop: threading.Event) -> None: ...


class ExpertSource:
    """The task's scripted expert, in-process, one-step chunks: the demonstration policy.

    A fresh expert is made at every episode start (step 0), after the reset built the scene.
    """

    wants_frames = False

    def __init__(self, env: SimEnv) -> None:
        self.env = env
        self.expert: WaypointExpert | None = None
        self._obs: RobotObservation | None = None
        self.actions: list[np.ndarray] = []  # this episode's actions, for replay and datasets

    def observe(self, tick: StepRecord) -> None:
        if tick.step == 0:
            self.expert = self.env.expert()
            self.actions = []
        self._obs = tick.observation

    def fetch(self, queue: ChunkQueue, *, wait: bool, stop: threading.Event) -> None:
        if queue.remaining == 0 and self._obs is not None and self.expert is not None:
            action = self.expert.act(self._obs)
            self.actions.append(action)
            queue.submit("ee_delta", action[None, :])


@dataclass
class EpisodeResult:
    task: str
    seed: int | None
    instruction: str
    success: bool
    steps: int
    time_s: float  # wall time of the episode
    sim_time_s: float
    clipped: int = 0
    rejected: int = 0
    watchdog_holds: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class EpisodeStepper:
    """One episode, one control tick at a time: the loop body of `run_episode` and of the sim node
    (``sims.node.SimNode``), so both step, observe and count alike.

    ``reset()`` resets ``env`` with ``seed`` and shows ``source`` the first observation; each ``step()``
    plays the executor's next step (``None`` when the plan ran out: the watchdog decides when the robot
    holds; a step the robot refuses is counted, the robot holds, the chunk plays on) and shows ``source``
    the new observation; ``done`` once the task succeeded or the episode was cut; ``result()`` sums it up.
    Where chunks come from and when the next tick is due are the caller's.
    """

    def __init__(
        self,
        env: SimEnv,
        source: Observer,
        executor: ChunkExecutor,
        *,
        seed: int | None,
        lockstep: bool,
        frame_every: int = 1,
        on_frame: Callable[[np.ndarray], None] | None = None,
        video: EpisodeVideo | None = None,
    ) -> None:
        self.env, self.source, self.executor = env, source, executor
        self.seed, self.lockstep = seed, lockstep
        self.frame_every = max(frame_every, 1)
        self.on_frame = on_frame
        self.video = video
        self.success = False
        self.done = False
        self._started = 0.0
        self._stats0 = (0, 0, 0)

    def reset(self) -> None:
        self.executor.queue.clear()  # a plan from the last episode is not this one's
        obs, _ = self.env.reset(seed=self.seed)
        self._stats0 = _stats(self.env)
        if self.video is not None:
            self.video.begin(self.env, self.seed)
        self._started = time.monotonic()
        self.success = self.done = False
        self.source.observe(self._observe(obs, 0))

    def step(self) -> bool:
        """One control tick; True when the episode is over."""
        executor, env = self.executor, self.env
        action = executor.next_action()
        try:
            result = env.step(action)
        except ActionError as exc:
            executor.failed(exc)
            result = env.step(None)
        else:
            if action is not None:
                executor.sent()
        self.success = result.success
        self.source.observe(self._observe(result.observation, env.steps))
        self.done = result.terminated or result.truncated
        return self.done

    def result(self) -> EpisodeResult:
        env = self.env
        stats = _stats(env)
        return EpisodeResult(
            task=env.task.name,
            seed=self.seed,
            instruction=env.instruction,
            success=self.success,
            steps=env.steps,
            time_s=time.monotonic() - self._started,
            sim_time_s=env.steps / env.config.robot.control_hz,
            clipped=stats[0] - self._stats0[0],
            rejected=stats[1] - self._stats0[1],
            watchdog_holds=stats[2] - self._stats0[2],
        )

    def _observe(self, obs: RobotObservation, step: int) -> StepRecord:
        due = step % self.frame_every == 0
        needs_actions = self.executor.queue.remaining == 0
        # Real time: frames for the source at frame rate. Lockstep: exactly one frame per plan, when
        # the chunk runs out, so every published frame is answered by one chunk.
        for_source = self.source.wants_frames and (needs_actions if self.lockstep else due)
        for_video = due and self.on_frame is not None
        image = self.env.render("scene") if (for_source or for_video) else None
        t_capture_ns = time.monotonic_ns()
        if image is not None and for_video and self.on_frame is not None:
            self.on_frame(image)
        if due and self.video is not None:  # the viewer's frame: the state goes to its process, no image here
            self.video.show(self.env, wait=self.lockstep)
        wrist = self.env.render("wrist") if for_source and getattr(self.source, "wants_wrist", False) else None
        return StepRecord(step, obs, image if for_source else None, t_capture_ns, needs_actions, wrist)


def run_episode(
    env: SimEnv,
    clock: Clock,
    source: ActionSource,
    *,
    seed: int | None,
    frame_every: int = 1,
    stop: threading.Event | None = None,
    on_frame: Callable[[np.ndarray], None] | None = None,
    video: EpisodeVideo | None = None,
) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and run one episode to success, truncation or ``stop``, in-process.

    ``on_frame`` receives every regularly rendered policy-camera frame (every ``frame_every`` steps);
    ``video`` (a viewer camera's episode, `sims.viewer`) is shown the scene as often.
    """
    stop = stop or threading.Event()
    executor = ChunkExecutor(env.config.robot.robot, env.robot, receiver="sim", drop_on_failure=False)
    episode = EpisodeStepper(env, source, executor, seed=seed, lockstep=clock.lockstep,
                             frame_every=frame_every, on_frame=on_frame, video=video)
    episode.reset()
    # Ticks count from here: the first image after a reset uploads every mesh (slow with EGL).
    clock.start()
    while not stop.is_set():
        source.fetch(executor.queue, wait=clock.lockstep, stop=stop)
        if clock.lockstep and executor.queue.remaining == 0:
            break  # stopped while waiting
        if episode.step():
            break
        clock.wait_next_tick()
    return episode.result()


def _stats(env: SimEnv) -> tuple[int, int, int]:
    s = env.robot.stats
    return s.clipped, s.rejected, s.watchdog_holds


def episode_video_path(path: str, episode: int, episodes: int) -> str:
    """``runs/reach.mp4`` for one episode; ``runs/reach-ep001.mp4`` per episode when there are several.

    A ``{episode}`` placeholder in ``path`` is filled in instead.
    """
    if "{episode}" in path:
        return path.format(episode=episode)
    if episodes <= 1:
        return path
    stem, dot, suffix = path.rpartition(".")
    if not dot:
        return f"{path}-ep{episode:03d}"
    return f"{stem}-ep{episode:03d}.{suffix}"
