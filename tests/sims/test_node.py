"""The sim node on the wire: frames and states out, action chunks in, results recorded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sims.camera import CameraConfig
from sims.clock import LockstepClock
from sims.env import SimEnv, SimEnvConfig
from sims.loop import ExpertSource, run_episode
from sims.node import SimNode, SimNodeConfig

messages = pytest.importorskip("agentrt.messages")
transport = pytest.importorskip("agentrt.transport")


def expert_actions(task: str, seed: int) -> np.ndarray:
    """The expert's whole action sequence for one seeded lockstep episode."""
    with SimEnv(SimEnvConfig(task=task, camera=CameraConfig(renderer="tiny"))) as env:
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
