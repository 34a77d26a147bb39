"""The sim node: a PyBullet task on the wire.

Publishes ``Frame`` (scene camera, latest-only) and ``RobotState`` (every
control tick, latest-only), consumes ``ActionChunk`` (lossless), runs
``episodes`` episodes with seeds ``seed, seed+1, ...``, records each episode's
result (success, steps, time) and can save an MP4 per episode.

Clocks:

- ``lockstep``: the sim publishes a frame whenever the current chunk is used up
  and waits for the chunk computed from it (``frame_seq`` >= that frame's seq);
  while it waits it republishes the frame every ``republish_ms``, so a
  subscriber that joined late (latest-only streams drop what came before)
  still gets it. Deterministic for a seed.
- ``realtime``: ticks at ``control_hz`` on the wall clock, renders at
  ``frame_hz``, and a chunk takes effect at the first tick after it arrives
  while the current one keeps executing; no action within the robot's
  ``deadline_ms`` and the watchdog holds the robot.

Every tick takes every message waiting on the actions input (real time) or
waits for the chunk answering the frame (lockstep). Chunks computed from a
frame of an earlier episode are dropped (stale); a chunk with ``frame_seq`` -1
(protocol section 3: computed from no frame) cannot be stale and is executed
like any other (logged once: its latency is not measured); a chunk whose
``robot`` is not this sim's robot is refused
(logged once per sender and name); a message that is no ActionChunk is dropped;
a malformed chunk (kind, shape) is rejected and the robot holds. ``counters()``
has them all, for telemetry. The wire modules are imported inside ``run`` so
``sims`` needs no ZeroMQ to import.

    stop = threading.Event()
    node = SimNode(SimNodeConfig(task="reach", frames_endpoint="ipc:///tmp/x/frames",
                                 state_endpoint="ipc:///tmp/x/state", actions_endpoint="ipc:///tmp/x/actions"))
    results = node.run(stop)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.chunks import ChunkExecutor, ChunkQueue
from agentrt.errors import ConfigError
from sims.camera import SceneCameraConfig
from sims.clock import CLOCKS, make_clock
from sims.env import SimEnv, SimEnvConfig
from sims.loop import EpisodeResult, StepRecord, episode_video_path, run_episode
from sims.robot import RobotConfig
from sims.video import VideoWriter

__all__ = ["SimConfig", "SimNodeConfig", "SimNode"]

log = logging.getLogger(__name__)


@dataclass
class SimConfig:
    """What the sim runs: task, robot, episodes, clock, camera. Also the launch-file params of `SimulationNode`."""

    task: str = "reach"
    robot: str = "panda"
    seed: int = 0  # episode i uses seed + i
    episodes: int = 1
    clock: str = "lockstep"  # lockstep | realtime
    control_hz: float = 20.0
    frame_hz: float = 10.0  # realtime render rate; lockstep renders whenever a new chunk is needed
    camera_width: int = 128
    camera_height: int = 128
    renderer: str = "auto"  # auto | egl | tiny
    deadline_ms: float = 250.0  # the robot's deadman watchdog
    stream: str = "scene"  # Frame.stream
    video_path: str | None = None  # one MP4 per episode (see sims.loop.episode_video_path); "{task}": the task
    results_path: str | None = None  # JSON lines, one per episode; "{task}": the task
    republish_ms: float = 200.0

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.control_hz <= 0:
            raise ConfigError(f"{name}.control_hz: expected > 0, got {self.control_hz}")
        if self.clock not in CLOCKS:
            raise ConfigError(f"{name}.clock: expected one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if self.episodes < 1:
            raise ConfigError(f"{name}.episodes: expected >= 1, got {self.episodes}")
        if self.seed < 0:
            raise ConfigError(f"{name}.seed: expected an integer >= 0, got {self.seed}")
        if not (0 < self.frame_hz <= self.control_hz):
            raise ConfigError(f"{name}.frame_hz: expected 0 < frame_hz <= control_hz={self.control_hz}, got {self.frame_hz}")
        self.env_config()  # task, robot, camera and renderer are checked here, before anything starts
        # one launch file runs every task (launch/sim.yaml: runs/sim_{task}.mp4), so its outputs name the task
        if self.video_path:
            self.video_path = self.video_path.replace("{task}", self.task)
        if self.results_path:
            self.results_path = self.results_path.replace("{task}", self.task)

    def env_config(self) -> SimEnvConfig:
        return SimEnvConfig(
            task=self.task,
            robot=RobotConfig(robot=self.robot, control_hz=self.control_hz, deadline_ms=self.deadline_ms),
            camera=SceneCameraConfig(width=self.camera_width, height=self.camera_height, renderer=self.renderer),
        )


@dataclass
class SimNodeConfig(SimConfig):
    """A standalone sim (not under the supervisor): the endpoints it binds and connects."""

    frames_endpoint: str = ""
    state_endpoint: str = ""
    actions_endpoint: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("frames_endpoint", "state_endpoint", "actions_endpoint"):
            value = getattr(self, name)
            if not isinstance(value, str) or "://" not in value:
                raise ConfigError(f"SimNodeConfig.{name}: expected an endpoint like 'ipc:///tmp/agentrt/{name[:-9]}', got {value!r}")


class _WireSource:
    """ActionSource over the wire: publishes ticks, receives ActionChunk messages."""

    wants_frames = True

    def __init__(self, node: SimNode, frames: Any, states: Any, actions: Any) -> None:
        self.node, self._frames, self._states, self._actions = node, frames, states, actions
        self.config = node.config
        self.episode_first_seq = 0  # chunks planned from earlier frames belong to an old episode
        self._request_seq = -1  # lockstep: the frame whose chunk we wait for
        self._last_frame: Any = None
        self._last_state: Any = None
        self.episode = -1

    def start_episode(self, episode: int) -> None:
        self.episode = episode
        self.episode_first_seq = self.node.frame_seq
        self.node.executor.new_episode(self.episode_first_seq)
        self._request_seq = -1

    def observe(self, tick: StepRecord) -> None:
        from agentrt.messages import Frame, RobotState

        node, obs = self.node, tick.observation
        frame_seq = -1
        if tick.image is not None:
            frame_seq = node.frame_seq
            self._last_frame = Frame(self.config.stream, frame_seq, tick.t_capture_ns, tick.image)
            self._frames.send(self._last_frame)
            node.frame_seq += 1
            if tick.needs_actions:
                self._request_seq = frame_seq
        self._last_state = RobotState(
            self.config.robot,
            node.state_seq,
            time.monotonic_ns(),
            obs.joint_positions,
            obs.joint_velocities,
            obs.ee_pose,
            float(obs.gripper),
            frame_seq,
            instruction=self.node.env.instruction,  # the policy is told the task on the wire
            episode=self.episode,
        )
        self._states.send(self._last_state)
        node.state_seq += 1

    def _take(self, message: Any, queue: ChunkQueue, *, min_frame_seq: int | None = None) -> bool:
        executor = self.node.executor
        if queue is not executor.queue:
            raise ValueError("the sim's wire source feeds its node's executor: run_episode(..., executor=node.executor)")
        return executor.take(message, min_frame_seq=min_frame_seq)

    def fetch(self, queue: ChunkQueue, *, wait: bool, stop: threading.Event) -> None:
        if not wait:
            while (message := self._actions.recv(timeout_ms=0)) is not None:
                self._take(message, queue)
            return
        if queue.remaining > 0:
            return
        next_republish = time.monotonic() + self.config.republish_ms / 1e3
        while not stop.is_set():
            message = self._actions.recv(timeout_ms=50)
            if message is not None and self._take(message, queue, min_frame_seq=self._request_seq):
                return
            if time.monotonic() >= next_republish:
                # A latest-only subscriber that connected late missed the frame: send it again.
                if self._last_frame is not None:
                    self._frames.send(self._last_frame)
                if self._last_state is not None:
                    self._states.send(self._last_state)
                next_republish = time.monotonic() + self.config.republish_ms / 1e3


class SimNode:
    """Hosts one SimEnv on the wire; ``run(stop_event)`` until the episodes are done or stop is set."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.env = SimEnv(config.env_config())
        self.results: list[EpisodeResult] = []
        self.frame_seq = 0
        self.state_seq = 0
        # chunks must name this sim's robot; a refused step is counted and the lockstep plan plays on
        self.executor = ChunkExecutor(config.robot, self.env.robot, receiver="sim node",
                                      period_ms=None, drop_on_failure=False)

    def counters(self) -> dict[str, int]:
        """The action input's counts, as telemetry counters (``agentrt.node``: ``bad.*`` and ``dropped.*`` add to
        the run's bad and dropped totals)."""
        return self.executor.counters()

    def run(self, stop_event: threading.Event) -> list[EpisodeResult]:
        """Standalone: bind / connect the config's endpoints and run the episodes."""
        from agentrt.transport import Publisher, Subscriber

        cfg = self.config
        if not isinstance(cfg, SimNodeConfig):
            raise ConfigError("SimNode.run needs a SimNodeConfig with endpoints; under a launch file use SimulationNode")
        with (
            Publisher(cfg.frames_endpoint) as frames,
            Publisher(cfg.state_endpoint) as states,
            Subscriber(cfg.actions_endpoint, lossless=True) as actions,
        ):
            return self.run_on(frames, states, actions, stop_event)

    def run_on(self, frames: Any, states: Any, actions: Any, stop_event: Any) -> list[EpisodeResult]:
        """Run the episodes over given wires: ``frames`` / ``states`` have ``send(msg)``,
        ``actions`` has ``recv(timeout_ms)``, ``stop_event`` has ``is_set()``."""
        cfg = self.config
        frame_every = max(1, int(round(cfg.control_hz / cfg.frame_hz)))
        source = _WireSource(self, frames, states, actions)
        try:
            self.env.connect()
            log.info("sim node: task %s, robot %s, %s clock, renderer %s", cfg.task, cfg.robot, cfg.clock, self.env.renderer)
            for episode in range(cfg.episodes):
                if stop_event.is_set():
                    break
                result = self._episode(episode, source, frame_every, stop_event)
                if result is not None:
                    self.results.append(result)
        finally:
            self.env.close()
        return self.results

    def _episode(self, episode: int, source: _WireSource, frame_every: int, stop: threading.Event) -> EpisodeResult | None:
        cfg = self.config
        clock = make_clock(cfg.clock, cfg.control_hz)
        source.start_episode(episode)
        video = None
        if cfg.video_path:
            video = VideoWriter(episode_video_path(cfg.video_path, episode, cfg.episodes), fps=cfg.control_hz / frame_every)
        try:
            result = run_episode(
                self.env, clock, source, seed=cfg.seed + episode, frame_every=frame_every, stop=stop,
                on_frame=video.write if video else None, executor=self.executor,
            )
        finally:
            if video is not None:
                video.close()
        if stop.is_set() and not result.success:
            log.info("sim node: stopped during episode %d", episode)
            return None
        if self.executor.latencies_ms:
            result.extra["capture_to_chunk_p50_ms"] = float(np.median(self.executor.latencies_ms))
        if clock.lateness_ms:
            result.extra["tick_lateness_p99_ms"] = float(np.percentile(clock.lateness_ms, 99))
        log.info(
            "episode %d (%s): %s in %d steps, %.2f s", episode, result.instruction,
            "success" if result.success else "failure", result.steps, result.time_s,
        )
        if cfg.results_path:
            path = Path(cfg.results_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                out.write(json.dumps(result.to_dict()) + "\n")
        return result
