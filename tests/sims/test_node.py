"""The sim node on the wire: frames and states out, action chunks in, results recorded.

Tests run it as `agentrt run` does, in a `NodeHost` (the process-side NodeIO: real sockets), on a thread; or
in-process on a virtual clock (`agentrt.testing.MockNode`), where its events (chunks, Idle turns, timer ticks)
are the only things that move it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from agentrt import transport, wire
from agentrt.messages import ActionChunk, Frame, RobotState
from agentrt.nodehost import NodeHost
from agentrt.testing import MockNode, frames_of
from sims.camera import SceneCameraConfig
from sims.clock import LockstepClock
from sims.env import SimEnv, SimEnvConfig
from sims.loop import ExpertSource, run_episode
from sims.node import SimNode, SimNodeConfig

_controls = itertools.count()


def expert_actions(task: str, seed: int) -> np.ndarray:
    """The expert's whole action sequence for one seeded lockstep episode."""
    with SimEnv(SimEnvConfig(task=task, camera=SceneCameraConfig(renderer="tiny"))) as env:
        source = ExpertSource(env)
        result = run_episode(env, LockstepClock(), source, seed=seed)
    assert result.success
    return np.stack(source.actions)


def host_plan(tmp_path: Path) -> dict[str, Any]:
    """What the supervisor hands the sim's process: its wires (the sim binds frames and state, connects actions)."""
    wire_of = {name: {"address": f"ipc://{tmp_path}/{name}", "curve": False} for name in ("frames", "state", "actions")}
    return {"name": "sim", "control": f"inproc://sim-node-test-control-{next(_controls)}", "heartbeat_ms": 100,
            "telemetry_ms": 100, "inputs": {"actions": {**wire_of["actions"], "lossless": True}},
            "outputs": {"frames": {**wire_of["frames"], "lossless": False},
                        "state": {**wire_of["state"], "lossless": False}}}


class Hosted:
    """The sim node in a NodeHost on a thread: open, setup, run until its episodes end or ``stop()``."""

    def __init__(self, tmp_path: Path, config: SimNodeConfig) -> None:
        self.address = {name: f"ipc://{tmp_path}/{name}" for name in ("frames", "state", "actions")}
        self.host = NodeHost(host_plan(tmp_path))
        self.node = SimNode(config, name="sim", io=self.host)
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            self.host.open()
            self.node.setup()
            self.host.node = self.node
            self.node.run()
        except BaseException as exc:  # the test thread reports it
            self.errors.append(exc)
        finally:
            self.node.teardown()
            self.host.close()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.host.request_stop("test over")
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()
        assert not self.errors, self.errors


def test_node_lockstep_replays_expert_chunks(tmp_path: Path) -> None:
    seed, chunk = 3, 4
    actions = expert_actions("reach", seed)
    config = SimNodeConfig(
        task="reach", seed=seed, clock="lockstep", camera_width=64, camera_height=64, renderer="tiny",
        video_path=str(tmp_path / "reach.mp4"), results_path=str(tmp_path / "results.jsonl"),
    )
    sim = Hosted(tmp_path, config)
    with (
        transport.Subscriber(sim.address["frames"]) as frames,
        transport.Subscriber(sim.address["state"]) as states,
        transport.Publisher(sim.address["actions"], lossless=True) as out,
    ):
        sim.start()
        try:
            sent, seq, frames_seen, last_frame_seq = 0, 0, 0, -1
            deadline = time.monotonic() + 60
            while sim.thread.is_alive() and time.monotonic() < deadline and sent < len(actions):
                frame = frames.recv(timeout_ms=200)
                if frame is None or frame.seq <= last_frame_seq:
                    continue
                assert isinstance(frame, Frame)
                assert frame.image.shape == (64, 64, 3) and frame.image.dtype == np.uint8
                last_frame_seq = frame.seq
                frames_seen += 1
                part = actions[sent : sent + chunk]
                out.send(ActionChunk("panda", seq, frame.seq, frame.t_capture_ns, "ee_delta", part, 50.0))
                sent += len(part)
                seq += 1
            state = states.recv(timeout_ms=2000)
            assert isinstance(state, RobotState)
            assert state.ee_pose.shape == (7,) and state.joint_positions.shape == (7,)
            sim.thread.join(timeout=30)  # one episode: the node ends by itself (ends_run)
        finally:
            sim.stop()
    results = sim.node.results
    assert frames_seen >= len(actions) // chunk
    assert len(results) == 1 and results[0].success, results
    assert results[0].steps == len(actions)  # the wire replay is the expert's trajectory, step for step
    assert (tmp_path / "reach.mp4").stat().st_size > 0
    assert "success" in (tmp_path / "results.jsonl").read_text()
    assert sim.node.stats.received["actions"] == seq  # counted by the node's events, as for any node


def test_node_realtime_holds_without_actions_and_stops(tmp_path: Path) -> None:
    config = SimNodeConfig(
        task="reach", clock="realtime", renderer="tiny", camera_width=32, camera_height=32, frame_hz=5.0,
        deadline_ms=100.0,
    )
    sim = Hosted(tmp_path, config)
    node = sim.node
    with (
        transport.Subscriber(sim.address["state"]) as states,
        transport.Publisher(sim.address["actions"], lossless=True) as out,
    ):
        sim.start()
        try:
            first = None
            deadline = time.monotonic() + 30
            while first is None and time.monotonic() < deadline:
                first = states.recv(timeout_ms=200)
            assert isinstance(first, RobotState)
            # One chunk: move +x for 4 steps; then silence, so the watchdog must hold the robot.
            push = np.tile(np.array([[0.02, 0.0, 0.0, 0.0]], np.float32), (4, 1))
            out.send(ActionChunk("panda", 0, 10**9, 0, "ee_delta", push, 50.0))
            time.sleep(1.5)
            a = states.recv(timeout_ms=1000)
            time.sleep(0.5)
            b = states.recv(timeout_ms=1000)
            assert a is not None and b is not None
            assert np.linalg.norm(b.ee_pose[:3] - a.ee_pose[:3]) < 0.01  # holding still
            assert b.seq > a.seq
            # Bad chunks over the wire. NaN never reaches the robot (the wire decoder drops it and
            # counts it as a bad message); a wrong length reaches it and is rejected. Either way it holds.
            nan = np.full((2, 4), np.nan, np.float32)
            out.send(ActionChunk("panda", 1, 10**9, 0, "ee_delta", nan, 50.0))
            out.send(ActionChunk("panda", 2, 10**9, 0, "ee_delta", np.zeros((1, 5), np.float32), 50.0))
            deadline = time.monotonic() + 10
            while node.env.robot.stats.rejected < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert node.env.robot.stats.rejected == 1 and node.env.robot.stats.actions == 4
            time.sleep(0.3)
            c = states.recv(timeout_ms=1000)
            assert c is not None and np.linalg.norm(c.ee_pose[:3] - b.ee_pose[:3]) < 0.01
        finally:
            sim.stop()
    assert node.env.robot.stats.actions >= 1
    assert node.stats.ticks > 0  # real time: the node's own timer paces the control steps


class _FrozenHost(NodeHost):
    """A NodeHost whose clock never moves (no tick ever falls due) and that stops once ``until`` inputs came."""

    until = 0

    def clock_ns(self) -> int:
        return 1_000_000_000

    def stop_reason(self) -> str:
        received = self.node.stats.received.get("actions", 0) if self.node is not None else 0
        return "test over" if received >= self.until else super().stop_reason()


def test_a_real_time_tick_takes_every_waiting_message_and_accounts_for_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Items 15.2 and 15.4: before the next real-time tick, the sim takes the chunk behind 200 malformed
    messages; a chunk with frame_seq -1 ("none") is executed and counted; chunks for another robot are
    refused, counted and logged once however many come, and leave the plan in progress untouched."""
    host = _FrozenHost(host_plan(tmp_path))
    node = SimNode(SimNodeConfig(task="reach", robot="panda", clock="realtime", renderer="tiny"), name="sim", io=host)
    zeros = np.zeros((3, 4), np.float32)
    raw = zmq.Context.instance().socket(zmq.PUSH)
    raw.setsockopt(zmq.LINGER, 0)
    raw.bind(f"ipc://{tmp_path}/actions")
    try:
        host.open()
        node.setup()
        host.node = node
        node.frame_seq = 10  # this run's first episode starts at frame 10: a chunk from frame 3 is an old episode's
        for i in range(200):
            raw.send(b"not a message %d" % i)
        raw.send(wire.encode(ActionChunk("kuka_iiwa", 0, 12, 0, "ee_delta", zeros, 50.0)))
        raw.send(wire.encode(ActionChunk("panda", 1, 3, 0, "ee_delta", zeros, 50.0)))  # an old episode's
        raw.send(wire.encode(ActionChunk("panda", 2, -1, 0, "ee_delta", zeros, 50.0)))  # from no frame
        # A flood of chunks for another robot: all counted, one log line; the plan in progress is untouched.
        for seq in range(50):
            raw.send(wire.encode(ActionChunk("kuka_iiwa", 3 + seq, 12, 0, "ee_delta", zeros, 50.0)))
        host.until = 53
        with caplog.at_level(logging.INFO):
            node.run()
        assert node.stats.ticks == 0  # the clock stood still: all of it was taken before any tick
        assert node.executor.queue.remaining == 3 and host._subs["actions"].stats.bad == 200
        assert node.stats.counters == {"bad.other_robot_chunks": 51, "bad.not_chunks": 0, "bad.rejected_actions": 0,
                                       "dropped.stale_chunks": 1, "unframed_chunks": 1}
    finally:
        node.teardown()
        host.close()
        raw.close()
    refusals = [r.getMessage() for r in caplog.records if "kuka_iiwa" in r.getMessage()]
    assert len(refusals) == 1 and "this robot is 'panda'" in refusals[0], refusals
    assert sum("frame_seq -1" in r.getMessage() for r in caplog.records) == 1


LOCKSTEP = {"task": "reach", "episodes": 1, "clock": "lockstep", "camera_width": 32, "camera_height": 32,
            "renderer": "tiny"}


def test_lockstep_waits_for_the_chunk_answering_its_frame_and_one_from_no_frame_answers_it() -> None:
    zeros = np.zeros((2, 4), np.float32)
    with MockNode(SimNode, params=LOCKSTEP) as harness:
        sent = harness.run(inputs=[("actions", ActionChunk("panda", 0, -1, 0, "ee_delta", zeros, 50.0))])
        node = harness.node
        assert node.env.robot.stats.actions == 2 and node.stats.counters["unframed_chunks"] == 1
        # it played the chunk out, then showed the frame it now waits on: frame 0 at the reset, frame 1 after it
        assert [f.seq for f in frames_of(sent, "frames")] == [0, 1]
        assert [s.frame_seq for s in frames_of(sent, "state")] == [0, -1, 1]


def test_lockstep_republishes_the_awaited_frame_on_the_nodes_clock() -> None:
    """While the sim waits for a chunk it sends the frame (and state) again every republish_ms of its node's
    clock: on the virtual clock of a MockNode, 1 s of waiting at 200 ms is the frame and four repeats."""
    with MockNode(SimNode, params={**LOCKSTEP, "republish_ms": 200.0}) as harness:
        sent = harness.run(duration_s=1.0)
    frames, states = frames_of(sent, "frames"), frames_of(sent, "state")
    assert [f.seq for f in frames] == [0] * 5 and len(states) == 5
    assert all(f is frames[0] for f in frames)  # the same frame, not a new render
    assert harness.node.results == []  # no chunk came: the episode never ended


def test_real_time_steps_once_per_tick_of_the_nodes_timer() -> None:
    """Real time on a MockNode's virtual clock: each timer tick is one control step and one state; a frame
    every control_hz / frame_hz ticks; a chunk takes effect at the next tick, then the watchdog holds."""
    params = {**LOCKSTEP, "clock": "realtime", "control_hz": 20.0, "frame_hz": 10.0, "deadline_ms": 100.0}
    push = np.tile(np.array([[0.02, 0.0, 0.0, 0.0]], np.float32), (4, 1))
    with MockNode(SimNode, params=params) as harness:
        sent = harness.run(inputs=[("actions", ActionChunk("panda", 0, 0, 0, "ee_delta", push, 50.0))],
                           duration_s=1.0)
        node = harness.node
        ticks = node.stats.ticks
        assert ticks >= 10 and node.rate_hz == 20.0
        assert node.env.steps == ticks and len(frames_of(sent, "state")) == ticks + 1
        assert len(frames_of(sent, "frames")) == ticks // 2 + 1
        assert node.env.robot.stats.actions == 4 and node.executor.executed_chunks == 1
