"""The sim node: a PyBullet task on the wire, as a launch-file node (`agentrt run`).

    nodes:
      sim:
        class: sims.node:SimNode
        inputs: {actions: policy.actions}
        params: {task: reach, episodes: 3, clock: realtime, video_path: runs/reach.mp4}
        ends_run: true          # the run stops when the episodes are done
        restart: never

Outputs ``frames`` (scene camera, latest-only) and ``state`` (RobotState every
control tick, latest-only); input ``actions`` (ActionChunk, lossless). Params
are the fields of `SimNodeConfig`. It runs ``episodes`` episodes with seeds
``seed, seed+1, ...``, records each episode's result (success, steps, time) and
can save an MP4 per episode, from a 384x288 viewer camera rendered in its own
process (`sims.viewer`: the control loop only sends it the scene's state). Each episode is a `sims.loop.EpisodeStepper` (the loop
body `run_episode` uses in-process, so `agentrt eval` and the node step alike);
the node drives it from its own events (``Node.events``):

- ``lockstep``: the sim publishes a frame whenever the current chunk is used up
  and waits for the chunk computed from it (``frame_seq`` >= that frame's seq),
  then plays that chunk out; while it waits it republishes the frame (and the
  state) every ``republish_ms`` of the node's clock, so a subscriber that
  joined late (latest-only streams drop what came before) still gets it.
  Deterministic for a seed.
- ``realtime``: the node's timer ticks at ``control_hz`` (its ``rate_hz`` is
  the clock's), one control step a tick, rendering at ``frame_hz``; each chunk
  goes to the executor as it arrives and takes effect at the next tick, while
  the current one keeps executing until then; no action within the robot's
  ``deadline_ms`` and the watchdog holds the robot. A late tick is skipped, not
  bunched; the ticks' lateness is the episode's ``tick_lateness_p99_ms``.

What happens to each chunk is `agentrt.chunks.ChunkExecutor`'s (the one a real
arm uses): chunks computed from a frame of an earlier episode are dropped
(stale); a chunk with ``frame_seq`` -1 (protocol section 3: computed from no
frame) cannot be stale and is executed like any other (logged once: its
latency is not measured); a chunk whose ``robot`` is not this sim's robot is
refused (logged once per sender and name); a message that is no ActionChunk is
dropped; a malformed chunk (kind, shape) is rejected and the robot holds. The
executor's counts go to telemetry as this node's counters (``bad.*`` and
``dropped.*`` add to the run's bad and dropped totals): ``bad.other_robot_chunks``,
``bad.rejected_actions`` (actions, or whole chunks, the robot refused: it holds),
``bad.not_chunks``, ``dropped.stale_chunks`` and ``unframed_chunks``. Each
received chunk's trace (capture -> hops -> arrival) goes to telemetry too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.chunks import ChunkExecutor
from agentrt.errors import ConfigError
from agentrt.messages import Frame, RobotState, now_ns
from agentrt.node import Event, Idle, Input, Node, Stop, Tick, latest, lossless
from sims.camera import SceneCameraConfig
from sims.clock import CLOCKS
from sims.env import SimEnv, SimEnvConfig
from sims.loop import EpisodeResult, EpisodeStepper, StepRecord, episode_video_path
from sims.robot import RobotConfig
from sims.viewer import Viewer, ViewerConfig, ViewerVideo

__all__ = ["SimNodeConfig", "SimNode"]

LOCKSTEP_WAIT_NS = 50_000_000  # lockstep: how often the wait for a chunk looks at the republish timer
VIEWER_DONE_S = 30.0  # after the last episode: how long the viewer may take to finish the videos
VIEWER_STOP_S = 1.0  # stopped (Ctrl-C): within the supervisor's grace; the last video is cut, still playable


@dataclass
class SimNodeConfig:
    """The sim node's launch-file params: what it runs (task, robot, episodes, clock, camera) and what it writes."""

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
    video_width: int = 384  # the videos' viewer camera (sims.viewer), rendered in its own process
    video_height: int = 288
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
        self.viewer_config()
        # one launch file runs every task (launch/sim.yaml: runs/sim_{task}.mp4), so its outputs name the task
        if self.video_path:
            self.video_path = self.video_path.replace("{task}", self.task)
        if self.results_path:
            self.results_path = self.results_path.replace("{task}", self.task)

    def viewer_config(self) -> ViewerConfig:
        return ViewerConfig(width=self.video_width, height=self.video_height)

    def env_config(self) -> SimEnvConfig:
        return SimEnvConfig(
            task=self.task,
            robot=RobotConfig(robot=self.robot, control_hz=self.control_hz, deadline_ms=self.deadline_ms),
            camera=SceneCameraConfig(width=self.camera_width, height=self.camera_height, renderer=self.renderer),
        )


class SimNode(Node):
    """Runs ``episodes`` episodes of a sim task, driven by the ActionChunks on ``actions``."""

    inputs = {"actions": lossless("ActionChunk")}
    outputs = {"frames": latest("Frame"), "state": latest("RobotState")}
    Config = SimNodeConfig
    trace = True  # each chunk's trace (capture -> policy -> sim) goes to telemetry, though the sim has outputs
    wants_frames = True  # what its episodes show it (sims.loop.Observer), it publishes

    def __init__(self, config: SimNodeConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.env = SimEnv(config.env_config())  # no I/O until setup connects it
        self.results: list[EpisodeResult] = []
        self.frame_seq = 0
        self.state_seq = 0
        # chunks must name this sim's robot; a refused step is counted and the lockstep plan plays on
        self.executor = ChunkExecutor(config.robot, self.env.robot, receiver="sim node",
                                      period_ms=None, drop_on_failure=False)
        self._lockstep = config.clock == "lockstep"
        self._frame_every = max(1, int(round(config.control_hz / config.frame_hz)))
        self._episode = -1
        self._request_seq = -1  # lockstep: the frame whose chunk the sim waits for
        self._last_frame: Frame | None = None
        self._last_state: RobotState | None = None
        self._viewer: Viewer | None = None
        self._video: ViewerVideo | None = None
        self._lateness_ms: list[float] = []

    def setup(self) -> None:
        self.env.connect()  # load the world before reporting ready
        # real time: one control step per timer tick; lockstep: the chunks alone drive it
        self.rate_hz = 0.0 if self._lockstep else float(self.config.control_hz)
        cfg = self.config
        self.log.info("task %s, robot %s, %s clock, renderer %s", cfg.task, cfg.robot, cfg.clock, self.env.renderer)

    def run(self) -> None:
        events = self.events(idle_ns=LOCKSTEP_WAIT_NS if self._lockstep else None)
        try:
            for index in range(self.config.episodes):
                episode = self._start(index)
                try:
                    finished = self._play(episode, events)
                finally:
                    self._close_video()
                if not finished:
                    self.log.info("stopped during episode %d", index)
                    break
                self._finish(episode)
        finally:
            self.stats.counters.update(self.executor.counters())
        successes = sum(r.success for r in self.results)
        self.log.info("%d/%d episodes succeeded (%s)", successes, len(self.results), self.config.task)

    def teardown(self) -> None:
        self._close_video()
        if self._viewer is not None:
            self._viewer.close(wait_s=VIEWER_STOP_S if self.stop_requested else VIEWER_DONE_S)
        self.env.close()

    # ---- one episode ---------------------------------------------------------------------------

    def _start(self, index: int) -> EpisodeStepper:
        cfg = self.config
        self._episode = index
        self.executor.new_episode(self.frame_seq)  # chunks planned from earlier frames belong to an old episode
        self._request_seq = -1
        self._lateness_ms = []
        if cfg.video_path:
            self._viewer = self._viewer or Viewer(cfg.viewer_config())
            self._video = self._viewer.episode(episode_video_path(cfg.video_path, index, cfg.episodes),
                                               fps=cfg.control_hz / self._frame_every)
        episode = EpisodeStepper(self.env, self, self.executor, seed=cfg.seed + index, lockstep=self._lockstep,
                                 frame_every=self._frame_every, video=self._video)
        episode.reset()
        return episode

    def _play(self, episode: EpisodeStepper, events: Iterator[Event]) -> bool:
        """Step ``episode`` from the node's events until it is over (True) or the node must stop (False)."""
        republish_ns = int(self.config.republish_ms * 1e6)
        next_republish: int | None = None  # lockstep: set from the first event after a frame went out
        first_tick = True
        for event in events:
            if isinstance(event, Stop):
                return False
            if isinstance(event, Input):
                if not self._lockstep:
                    self.executor.take(event.message)  # the newest plan, from the next tick on
                elif self.executor.take(event.message, min_frame_seq=self._request_seq):
                    while self.executor.queue.remaining > 0 and not episode.step():
                        pass  # lockstep plays the chunk out; the last step renders the next frame to answer
                    next_republish = None
            elif isinstance(event, Tick):
                if not first_tick:  # the first tick after a reset waited for the scene's first render
                    self._lateness_ms.append(event.late_ns / 1e6)
                first_tick = False
                episode.step()
            self.stats.counters.update(self.executor.counters())  # telemetry sends them as they are
            if episode.done:
                return True
            if self._lockstep and isinstance(event, Input | Idle):
                t_ns = event.t_recv_ns if isinstance(event, Input) else event.t_ns
                if next_republish is None:
                    next_republish = t_ns + republish_ns
                elif t_ns >= next_republish:
                    self._republish()
                    next_republish = t_ns + republish_ns
        return False

    def _republish(self) -> None:
        """A latest-only subscriber that connected late missed the frame the sim waits on: send it again."""
        if self._last_frame is not None:
            self.send("frames", self._last_frame)
        if self._last_state is not None:
            self.send("state", self._last_state)

    def _finish(self, episode: EpisodeStepper) -> None:
        cfg = self.config
        result = episode.result()
        if self.executor.latencies_ms:
            result.extra["capture_to_chunk_p50_ms"] = float(np.median(self.executor.latencies_ms))
        if self._lateness_ms:
            result.extra["tick_lateness_p99_ms"] = float(np.percentile(self._lateness_ms, 99))
        self.log.info(
            "episode %d (%s): %s in %d steps, %.2f s", self._episode, result.instruction,
            "success" if result.success else "failure", result.steps, result.time_s,
        )
        if cfg.results_path:
            path = Path(cfg.results_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                out.write(json.dumps(result.to_dict()) + "\n")
        self.results.append(result)

    def _close_video(self) -> None:
        if self._video is not None:
            self._video.close()
            self._video = None

    # ---- what the episode shows the node: it publishes it ---------------------------------------

    def observe(self, tick: StepRecord) -> None:
        obs = tick.observation
        frame_seq = -1
        if tick.image is not None:
            frame_seq = self.frame_seq
            self._last_frame = Frame(self.config.stream, frame_seq, tick.t_capture_ns, tick.image)
            self.send("frames", self._last_frame)
            self.frame_seq += 1
            if tick.needs_actions:
                self._request_seq = frame_seq
        self._last_state = RobotState(
            self.config.robot,
            self.state_seq,
            now_ns(),
            obs.joint_positions,
            obs.joint_velocities,
            obs.ee_pose,
            float(obs.gripper),
            frame_seq,
            instruction=self.env.instruction,  # the policy is told the task on the wire
            episode=self._episode,
        )
        self.send("state", self._last_state)
        self.state_seq += 1
