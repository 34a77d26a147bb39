"""Chunks and clocks: chunk execution and replacement, lockstep and real time."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from agentrt.chunks import ChunkQueue
from agentrt.errors import ActionError, ConfigError
from sims.clock import LockstepClock, RealTimeClock, make_clock
from sims.loop import ExpertSource, StepRecord, episode_video_path, run_episode
from tests.sims.conftest import make_env


def test_chunk_steps_come_out_in_order_then_none() -> None:
    queue = ChunkQueue()
    assert queue.next() is None
    queue.submit("ee_delta", np.arange(8, dtype=np.float32).reshape(2, 4))
    first, second = queue.next(), queue.next()
    assert first is not None and second is not None
    assert first.values.tolist() == [0, 1, 2, 3] and second.values.tolist() == [4, 5, 6, 7]
    assert queue.next() is None and queue.remaining == 0


def test_a_new_chunk_replaces_the_rest_of_the_current_one() -> None:
    queue = ChunkQueue()
    queue.submit("ee_delta", np.zeros((5, 4), np.float32))
    queue.next()
    queue.submit("ee_delta", np.ones((2, 4), np.float32), frame_seq=9)
    assert queue.replaced == 1 and queue.remaining == 2
    action = queue.next()
    assert action is not None and action.values[0] == 1.0
    assert queue.last is not None and queue.last.frame_seq == 9


@pytest.mark.parametrize(("kind", "shape"), [("dance", (2, 4)), ("ee_delta", (4,)), ("ee_delta", (0, 4))])
def test_malformed_chunks_are_rejected(kind: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ActionError):
        ChunkQueue().submit(kind, np.zeros(shape, np.float32))


def test_make_clock() -> None:
    assert make_clock("lockstep", 20).lockstep
    assert not make_clock("realtime", 20).lockstep
    with pytest.raises(ConfigError, match="lockstep, realtime"):
        make_clock("fast", 20)


def test_realtime_clock_records_lateness_per_tick() -> None:
    clock = RealTimeClock(200.0)
    clock.start()
    for _ in range(5):
        clock.wait_next_tick()
    assert len(clock.lateness_ms) == 5 and all(x >= 0 for x in clock.lateness_ms)


def test_expert_succeeds_in_real_time() -> None:
    with make_env("reach") as env:
        clock = RealTimeClock(env.config.robot.control_hz)
        result = run_episode(env, clock, ExpertSource(env), seed=0)
    assert result.success
    assert len(clock.lateness_ms) == result.steps - 1  # no wait after the last step


class SlowChunks:
    """A source that answers once with a long chunk and then goes quiet (a stalled policy)."""

    wants_frames = False

    def __init__(self) -> None:
        self.sent = False

    def observe(self, tick: StepRecord) -> None:
        pass

    def fetch(self, queue: ChunkQueue, *, wait: bool, stop: threading.Event) -> None:
        if not self.sent:
            queue.submit("ee_delta", np.tile(np.array([[0.02, 0.0, 0.0, 0.0]], np.float32), (6, 1)))
            self.sent = True


def test_realtime_keeps_executing_the_chunk_then_the_watchdog_holds() -> None:
    with make_env("reach", deadline_ms=150.0) as env:
        env.task.max_steps = 20  # type: ignore[misc]  # a short episode: 1 s at 20 Hz
        result = run_episode(env, RealTimeClock(20.0), SlowChunks(), seed=0)
        assert env.robot.stats.actions == 6  # the whole chunk ran, one step per tick
        assert result.watchdog_holds == 1 and env.robot.holding
        assert np.max(np.abs(env.robot.get_observation().joint_velocities)) < 0.05


def test_lockstep_stops_when_asked_while_waiting() -> None:
    class Silent:
        wants_frames = False

        def observe(self, tick: StepRecord) -> None:
            pass

        def fetch(self, queue: ChunkQueue, *, wait: bool, stop: threading.Event) -> None:
            stop.set()  # a lockstep source that never answers, then is told to stop

    with make_env("reach") as env:
        result = run_episode(env, LockstepClock(), Silent(), seed=0, stop=threading.Event())
    assert result.steps == 0 and not result.success


def test_episode_video_paths() -> None:
    assert episode_video_path("runs/a.mp4", 0, 1) == "runs/a.mp4"
    assert episode_video_path("runs/a.mp4", 2, 3) == "runs/a-ep002.mp4"
    assert episode_video_path("runs/{episode}.mp4", 4, 9) == "runs/4.mp4"

