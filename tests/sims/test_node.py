"""The sim node on the wire: frames and states out, action chunks in, results recorded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sims.camera import SceneCameraConfig
from sims.clock import LockstepClock
from sims.env import SimEnv, SimEnvConfig
from sims.loop import ExpertSource, run_episode
from sims.node import SimNode, SimNodeConfig

messages = pytest.importorskip("agentrt.messages")
transport = pytest.importorskip("agentrt.transport")


def expert_actions(task: str, seed: int) -> np.ndarray:
    """The expert's whole action sequence for one seeded lockstep episode."""
    with SimEnv(SimEnvConfig(task=task, camera=SceneCameraConfig(renderer="tiny"))) as env:
        source = ExpertSource(env)
        result = run_episode(env, LockstepClock(), source, seed=seed)
    assert result.success
    return np.stack(source.actions)


def endpoints(tmp_path: Path) -> dict[str, str]:
    return {
        "frames_endpoint": f"ipc://{tmp_path}/frames",
        "state_endpoint": f"ipc://{tmp_path}/state",
        "actions_endpoint": f"ipc://{tmp_path}/actions",
    }


def test_node_lockstep_replays_expert_chunks(tmp_path: Path) -> None:
    seed, chunk = 3, 4
    actions = expert_actions("reach", seed)
    config = SimNodeConfig(
        task="reach", seed=seed, clock="lockstep", camera_width=64, camera_height=64, renderer="tiny",
        video_path=str(tmp_path / "reach.mp4"), results_path=str(tmp_path / "results.jsonl"), **endpoints(tmp_path),
    )
    node = SimNode(config)
    stop = threading.Event()
    results: list = []
    thread = threading.Thread(target=lambda: results.extend(node.run(stop)), daemon=True)
    with (
        transport.Subscriber(config.frames_endpoint) as frames,
        transport.Subscriber(config.state_endpoint) as states,
        transport.Publisher(config.actions_endpoint, lossless=True) as out,
    ):
        thread.start()
        try:
            sent, seq, frames_seen, last_frame_seq = 0, 0, 0, -1
            deadline = time.monotonic() + 60
            while thread.is_alive() and time.monotonic() < deadline and sent < len(actions):
                frame = frames.recv(timeout_ms=200)
                if frame is None or frame.seq <= last_frame_seq:
                    continue
                assert isinstance(frame, messages.Frame)
                assert frame.image.shape == (64, 64, 3) and frame.image.dtype == np.uint8
                last_frame_seq = frame.seq
                frames_seen += 1
                part = actions[sent : sent + chunk]
                out.send(messages.ActionChunk("panda", seq, frame.seq, frame.t_capture_ns, "ee_delta", part, 50.0))
                sent += len(part)
                seq += 1
            state = states.recv(timeout_ms=2000)
            assert isinstance(state, messages.RobotState)
            assert state.ee_pose.shape == (7,) and state.joint_positions.shape == (7,)
            thread.join(timeout=30)
        finally:
            stop.set()
            thread.join(timeout=10)
    assert not thread.is_alive()
    assert frames_seen >= len(actions) // chunk
    assert len(results) == 1 and results[0].success, results
    assert results[0].steps == len(actions)  # the wire replay is the expert's trajectory, step for step
    assert (tmp_path / "reach.mp4").stat().st_size > 0
    assert "success" in (tmp_path / "results.jsonl").read_text()


def test_node_realtime_holds_without_actions_and_stops(tmp_path: Path) -> None:
    config = SimNodeConfig(
        task="reach", clock="realtime", renderer="tiny", camera_width=32, camera_height=32, frame_hz=5.0,
        deadline_ms=100.0, **endpoints(tmp_path),
    )
    node = SimNode(config)
    stop = threading.Event()
    thread = threading.Thread(target=node.run, args=(stop,), daemon=True)
    with transport.Subscriber(config.state_endpoint) as states, transport.Publisher(config.actions_endpoint, lossless=True) as out:
        thread.start()
        try:
            first = None
            deadline = time.monotonic() + 30
            while first is None and time.monotonic() < deadline:
                first = states.recv(timeout_ms=200)
            assert isinstance(first, messages.RobotState)
            # One chunk: move +x for 4 steps; then silence, so the watchdog must hold the robot.
            push = np.tile(np.array([[0.02, 0.0, 0.0, 0.0]], np.float32), (4, 1))
            out.send(messages.ActionChunk("panda", 0, 10**9, 0, "ee_delta", push, 50.0))
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
            out.send(messages.ActionChunk("panda", 1, 10**9, 0, "ee_delta", nan, 50.0))
            out.send(messages.ActionChunk("panda", 2, 10**9, 0, "ee_delta", np.zeros((1, 5), np.float32), 50.0))
            deadline = time.monotonic() + 10
            while node.env.robot.stats.rejected < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert node.env.robot.stats.rejected == 1 and node.env.robot.stats.actions == 4
            time.sleep(0.3)
            c = states.recv(timeout_ms=1000)
            assert c is not None and np.linalg.norm(c.ee_pose[:3] - b.ee_pose[:3]) < 0.01
        finally:
            stop.set()
            thread.join(timeout=15)
    assert not thread.is_alive()
    assert node.env.robot.stats.actions >= 1


def test_a_real_time_tick_takes_every_waiting_message_and_accounts_for_each(caplog: pytest.LogCaptureFixture) -> None:
    """Items 15.2 and 15.4: one real-time tick (one ``fetch``) takes the chunk behind 200 malformed messages;
    a chunk with frame_seq -1 ("none") is executed and counted; chunks for another robot are refused, counted
    and logged once however many come."""
    import logging

    import zmq

    from agentrt import wire
    from sims.node import SimConfig, _WireSource

    node = SimNode(SimConfig(task="reach", robot="panda", clock="realtime", renderer="tiny"))
    address = "inproc://agentrt-test-sim-actions"
    zeros = np.zeros((3, 4), np.float32)
    with transport.Subscriber(address, lossless=True, bind=True) as actions, caplog.at_level(logging.INFO):
        raw = zmq.Context.instance().socket(zmq.PUSH)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(address)
        try:
            source = _WireSource(node, None, None, actions)
            node.frame_seq = 10
            source.start_episode(1)  # this episode's frames start at seq 10
            for i in range(200):
                raw.send(b"not a message %d" % i)
            raw.send(wire.encode(messages.ActionChunk("kuka_iiwa", 0, 12, 0, "ee_delta", zeros, 50.0)))
            raw.send(wire.encode(messages.ActionChunk("panda", 1, 3, 0, "ee_delta", zeros, 50.0)))  # an old episode's
            raw.send(wire.encode(messages.ActionChunk("panda", 2, -1, 0, "ee_delta", zeros, 50.0)))  # from no frame
            assert actions.socket.poll(2000)
            queue = node.executor.queue  # the wire source feeds the node's chunk executor
            source.fetch(queue, wait=False, stop=threading.Event())  # one real-time tick
            assert queue.remaining == 3 and actions.stats.bad == 200
            assert node.counters() == {"bad.other_robot_chunks": 1, "bad.not_chunks": 0, "bad.rejected_actions": 0,
                                       "dropped.stale_chunks": 1, "unframed_chunks": 1}
            # A flood of chunks for another robot: all counted, one log line; the plan in progress is untouched.
            for seq in range(50):
                raw.send(wire.encode(messages.ActionChunk("kuka_iiwa", 3 + seq, 12, 0, "ee_delta", zeros, 50.0)))
            assert actions.socket.poll(2000)
            source.fetch(queue, wait=False, stop=threading.Event())
            assert node.counters()["bad.other_robot_chunks"] == 51 and queue.remaining == 3
            # Lockstep waits for the chunk answering its frame: one computed from no frame answers it too.
            raw.send(wire.encode(messages.ActionChunk("panda", 60, -1, 0, "ee_delta", zeros[:2], 50.0)))
            queue.clear()
            source.fetch(queue, wait=True, stop=threading.Event())
            assert queue.remaining == 2 and node.counters()["unframed_chunks"] == 2
        finally:
            raw.close()
    refusals = [r.getMessage() for r in caplog.records if "kuka_iiwa" in r.getMessage()]
    assert len(refusals) == 1 and "this robot is 'panda'" in refusals[0], refusals
    assert sum("frame_seq -1" in r.getMessage() for r in caplog.records) == 1
