"""The one chunk executor (``agentrt.chunks``): what happens to each message on an actions input, in order."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest

from agentrt.chunks import ChunkExecutor
from agentrt.errors import ActionError
from agentrt.messages import ActionChunk, Heartbeat, now_ns


@dataclass
class _Stats:
    rejected: int = 0


@dataclass
class _Robot:
    stats: _Stats = field(default_factory=_Stats)
    holds: int = 0

    def hold(self) -> None:
        self.holds += 1


def _chunk(robot: str = "panda", frame_seq: int = 5, rows: int = 3, kind: str = "ee_delta", dims: int = 4,
           dt_ms: float = 50.0, t_capture_ns: int = 0) -> ActionChunk:
    actions = np.arange(rows * dims, dtype=np.float32).reshape(rows, dims)
    return ActionChunk(robot, 0, frame_seq, t_capture_ns, kind, actions, dt_ms)


def test_the_executor_checks_each_message_in_order_and_counts_every_one_it_does_not_take(
    caplog: pytest.LogCaptureFixture,
) -> None:
    robot = _Robot()
    executor = ChunkExecutor("panda", robot, receiver="test robot", period_ms=50.0)
    executor.new_episode(10)  # frames before seq 10 belong to an earlier episode
    with caplog.at_level(logging.INFO, logger="agentrt.chunks"):
        assert not executor.take(Heartbeat("policy", 0, now_ns(), "running"))  # not a chunk
        assert not executor.take(_chunk(robot="koch", frame_seq=-5, kind="dance"))  # another robot: refused first
        assert not executor.take(_chunk(frame_seq=9))  # stale
        assert not executor.take(_chunk(frame_seq=12, kind="dance"))  # malformed: the robot holds
        assert executor.take(_chunk(frame_seq=-1, dt_ms=20.0))  # from no frame: executed; planned at 50 Hz: warned
        assert executor.take(_chunk(frame_seq=11, rows=2, t_capture_ns=now_ns()))
        assert not executor.take(_chunk(frame_seq=11), min_frame_seq=12)  # lockstep waits for frame 12
    assert executor.counters() == {"bad.other_robot_chunks": 1, "bad.not_chunks": 1, "bad.rejected_actions": 1,
                                   "dropped.stale_chunks": 2, "unframed_chunks": 1}
    assert robot.holds == 1 and executor.malformed_chunks == 1 and len(executor.latencies_ms) == 1
    assert sum("planned 20.0 ms apart" in r.getMessage() for r in caplog.records) == 1
    # The newest taken chunk plays, one step per next_action; executed counts it once.
    first = executor.next_action()
    assert first is not None and first.kind == "ee_delta" and first.values.tolist() == [0, 1, 2, 3]
    executor.sent()
    second = executor.next_action()
    assert second is not None and second.values.tolist() == [4, 5, 6, 7]
    executor.sent()
    assert executor.next_action() is None and executor.executed_chunks == 1


@pytest.mark.parametrize(("drop", "left"), [(True, 0), (False, 2)])
def test_a_refused_step_drops_the_rest_of_its_chunk_only_where_asked(drop: bool, left: int) -> None:
    executor = ChunkExecutor("panda", _Robot(), receiver="test robot", drop_on_failure=drop)
    assert executor.take(_chunk(rows=3))
    assert executor.next_action() is not None
    executor.failed(ActionError("expected 4 values, got 9"))
    assert executor.queue.remaining == left and executor.failed_actions == 1 and executor.executed_chunks == 0


def test_the_sim_node_and_the_real_robots_share_the_executor() -> None:
    from agentrt.testing import MockNode
    from sims.node import SimNode
    from sims.real.actuator import Actuator
    from sims.real.arm import BusArm, BusArmConfig

    sim = MockNode(SimNode, params={"task": "reach", "robot": "panda", "renderer": "tiny"}).node
    arm = BusArm(BusArmConfig(robot="so100", dry_run=True, watchdog_thread=False))
    assert isinstance(sim.executor, ChunkExecutor) and isinstance(Actuator(arm, "so100").executor, ChunkExecutor)


def test_the_executor_imports_nothing_from_the_simulator() -> None:
    code = "import sys, agentrt.chunks; print(sorted(m for m in sys.modules if m == 'sims' or m.startswith('sims.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
