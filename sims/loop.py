"""The episode loop shared by `agentrt sim` and the sim node, for both clocks.

One tick:

1. get actions: lockstep waits until the current chunk has a step (asking the
   source for one); real time only takes what has arrived;
2. step the env with the chunk's next step (``None`` when it ran out: the
   watchdog decides when the robot holds); a bad action is counted, the robot
   holds, the loop goes on;
3. observe: every tick a state; a rendered frame every ``frame_every`` ticks in
   real time, and in lockstep exactly when the source must plan a new chunk
   (video frames are rendered every ``frame_every`` ticks in both);
4. wait for the next tick (real time sleeps; lockstep does not).

Where actions come from is an ``ActionSource``: the scripted expert in-process
(``ExpertSource``) or the wire (``sims.node``).
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

__all__ = ["StepRecord", "ActionSource", "ExpertSource", "EpisodeResult", "run_episode", "episode_video_path"]


@dataclass
class StepRecord:
    """What the loop observed at one tick."""

    step: int  # control steps taken this episode (0: right after reset)
    observation: RobotObservation
    image: np.ndarray | None  # scene camera (H, W, 3) uint8 when the source should get a frame this tick
    t_capture_ns: int  # time.monotonic_ns() when the image (or state) was taken
    needs_actions: bool  # the current chunk is used up: a new plan is wanted


class ActionSource(Protocol):
    """Where chunks come from. ``fetch`` puts any that have arrived into the queue; with
    ``wait=True`` it blocks until one has (or ``stop`` is set)."""

    wants_frames: bool

    def observe(self, tick: StepRecord) -> None: ...

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


def run_episode(
    env: SimEnv,
    clock: Clock,
    source: ActionSource,
    *,
    seed: int | None,
    frame_every: int = 1,
    stop: threading.Event | None = None,
    on_frame: Callable[[np.ndarray], None] | None = None,
    executor: ChunkExecutor | None = None,
) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and run one episode to success, truncation or ``stop``.

    ``on_frame`` receives every regularly rendered frame (every ``frame_every`` steps), e.g. a video writer.
    ``executor`` plays the chunks (the sim node's, whose ``take`` the source feeds); by default a fresh one.
    A step the robot refuses is counted and the robot holds for that tick; the chunk plays on.
    """
    stop = stop or threading.Event()
    if executor is None:
        executor = ChunkExecutor(env.config.robot.robot, env.robot, receiver="sim", drop_on_failure=False)
    queue = executor.queue
    queue.clear()  # a plan from the last episode is not this one's
    obs, _ = env.reset(seed=seed)
    stats0 = _stats(env)
    started = time.monotonic()
    success = False
    source.observe(_observe(env, obs, 0, queue, source, clock, frame_every, on_frame))
    # Ticks count from here: the first image after a reset uploads every mesh (slow with EGL).
    clock.start()
    while not stop.is_set():
        source.fetch(queue, wait=clock.lockstep, stop=stop)
        if clock.lockstep and queue.remaining == 0:
            break  # stopped while waiting
        action = executor.next_action()
        try:
            result = env.step(action)
        except ActionError as exc:
            executor.failed(exc)
            result = env.step(None)
        else:
            if action is not None:
                executor.sent()
        obs, success = result.observation, result.success
        source.observe(_observe(env, obs, env.steps, queue, source, clock, frame_every, on_frame))
        if result.terminated or result.truncated:
            break
        clock.wait_next_tick()
    stats = _stats(env)
    return EpisodeResult(
        task=env.task.name,
        seed=seed,
        instruction=env.instruction,
        success=success,
        steps=env.steps,
        time_s=time.monotonic() - started,
        sim_time_s=env.steps / env.config.robot.control_hz,
        clipped=stats[0] - stats0[0],
        rejected=stats[1] - stats0[1],
        watchdog_holds=stats[2] - stats0[2],
    )


def _observe(
    env: SimEnv,
    obs: RobotObservation,
    step: int,
    queue: ChunkQueue,
    source: ActionSource,
    clock: Clock,
    frame_every: int,
    on_frame: Callable[[np.ndarray], None] | None,
) -> StepRecord:
    due = step % max(frame_every, 1) == 0
    needs_actions = queue.remaining == 0
    # Real time: frames for the source at frame rate. Lockstep: exactly one frame per plan, when
    # the chunk runs out, so every published frame is answered by one chunk.
    for_source = source.wants_frames and (needs_actions if clock.lockstep else due)
    for_video = due and on_frame is not None
    image = env.render("scene") if (for_source or for_video) else None
    t_capture_ns = time.monotonic_ns()
    if image is not None and for_video and on_frame is not None:
        on_frame(image)
    return StepRecord(step, obs, image if for_source else None, t_capture_ns, needs_actions)


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
