"""Supervisor behaviour with real node processes: restarts, bounded failure, hangs, clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentrt.launch import load_launch
from agentrt.messages import now_ns
from agentrt.supervisor import Supervisor, SupervisorConfig
from agentrt.testing import child_pids as children
from agentrt.testing import process_alive as alive

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "launch" / "pipeline_demo.yaml"
FAST = SupervisorConfig(heartbeat_ms=100, telemetry_ms=100, grace_s=1.5)


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


class Running:
    """A supervisor run in a thread; stops it and checks every process it started is gone."""

    def __init__(self, supervisor: Supervisor, duration_s: float | None = None) -> None:
        self.supervisor = supervisor
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, args=(duration_s,), daemon=True)
        self.thread.start()

    def _run(self, duration_s: float | None) -> None:
        self.code = self.supervisor.run(duration_s=duration_s)

    def finish(self) -> int | None:
        self.supervisor.request_stop()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive()
        return self.code


@pytest.fixture
def running() -> Iterator[list[Running]]:
    runs: list[Running] = []
    yield runs
    for run in runs:
        run.finish()
        leftover = [pid for pid in run.supervisor.all_pids() if alive(pid)]
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
        assert not leftover, f"processes left behind: {leftover}"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "launch.yaml"
    path.write_text(text)
    return path


def test_kill_9_restarts_node_and_messages_flow_again(running: list[Running]) -> None:
    spec = load_launch(DEMO, ["camera.rate_hz=50", "policy.warmup_s=0"])
    lines: list[str] = []
    run = Running(Supervisor(spec, config=FAST, output=lines.append))
    running.append(run)
    telemetry = run.supervisor.telemetry
    wait_for(lambda: len(telemetry.traces) > 5)
    old = run.supervisor.pids()["policy"]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: run.supervisor.pids().get("policy") not in (None, old))
    restarted_ns = now_ns()
    wait_for(lambda: any(dict(trace).get("policy", 0) > restarted_ns for trace in list(telemetry.traces)))
    assert telemetry.nodes["policy"].restarts == 1
    assert not alive(old)
    assert run.finish() == 0
    assert run.supervisor.failure == ""


def test_crash_at_start_gives_bounded_restarts_then_one_clear_failure(tmp_path: Path) -> None:
    path = write(tmp_path, """
nodes:
  cam:
    class: agentrt.nodes.faults:CrashOnStart
    params: {message: "no camera at /dev/video9"}
    max_restarts: 2
    backoff_s: 0.05
""")
    supervisor = Supervisor(load_launch(path), config=FAST, output=lambda line: None)
    assert supervisor.run(duration_s=60) == 1
    assert supervisor.failure.startswith("node 'cam' gave up after 2 restarts")
    assert "no camera at /dev/video9" in supervisor.failure
    assert "\n" not in supervisor.failure
    assert len(supervisor.all_pids()) == 3
    assert not any(alive(pid) for pid in supervisor.all_pids())


def test_restart_never_fails_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, """
nodes:
  cam:
    class: agentrt.nodes.faults:CrashOnStart
    restart: never
""")
    supervisor = Supervisor(load_launch(path), config=FAST, output=lambda line: None)
    assert supervisor.run(duration_s=60) == 1
    assert "failed (exit code 1; restart: never)" in supervisor.failure
    assert len(supervisor.all_pids()) == 1


def test_hung_node_is_killed_and_restarted(tmp_path: Path) -> None:
    path = write(tmp_path, """
nodes:
  cam:
    class: agentrt.nodes.faults:HangAfter
    params: {ticks: 3}
    heartbeat_timeout_s: 0.5
    max_restarts: 1
    backoff_s: 0.05
""")
    supervisor = Supervisor(load_launch(path), config=FAST, output=lambda line: None)
    assert supervisor.run(duration_s=60) == 1
    assert "hung (no heartbeat for 0.5 s)" in supervisor.failure
    assert supervisor.telemetry.nodes["cam"].restarts == 1
    assert not any(alive(pid) for pid in supervisor.all_pids())


def test_ctrl_c_stops_everything_and_leaves_no_orphan(tmp_path: Path) -> None:
    text = DEMO.read_text() + """
  stubborn:
    class: agentrt.nodes.faults:IgnoreStop
"""
    path = write(tmp_path, text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentrt.cli", "run", str(path), "--report-dir", str(tmp_path / "runs"),
         "--no-status"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace").rstrip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    node_pids: list[int] = []
    try:
        wait_for(lambda: any("child pid" in line for line in lines) and any("armed" in line for line in lines))
        grandchild = int(next(line for line in lines if "child pid" in line).rsplit(" ", 1)[1])
        node_pids = children(proc.pid)
        assert len(node_pids) == 4
        assert all(line.startswith("[") for line in lines if "agentrt.node." in line)
        os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=20)
        reader.join(timeout=5)
        assert code == 0, "\n".join(lines)
        assert any(line.startswith("stopped 4 node(s) in") for line in lines)
        for pid in [*node_pids, grandchild]:
            assert not alive(pid), f"pid {pid} left behind"
        reports = list((tmp_path / "runs").glob("*/report.json"))
        assert len(reports) == 1
        assert (reports[0].parent / "latency.png").stat().st_size > 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in node_pids:
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_consumer_restart_does_not_take_down_its_producer(running: list[Running]) -> None:
    spec = load_launch(DEMO, ["camera.rate_hz=50", "policy.warmup_s=0"])
    run = Running(Supervisor(spec, config=FAST, output=lambda line: None))
    running.append(run)
    telemetry = run.supervisor.telemetry
    wait_for(lambda: len(telemetry.traces) > 5)
    policy = run.supervisor.pids()["policy"]
    robot = run.supervisor.pids()["robot"]
    os.kill(robot, signal.SIGKILL)
    wait_for(lambda: run.supervisor.pids().get("robot") not in (None, robot))
    restarted_ns = now_ns()
    wait_for(lambda: any(trace[-1][1] > restarted_ns for trace in list(telemetry.traces)))
    assert run.supervisor.pids()["policy"] == policy
    assert telemetry.nodes["policy"].restarts == 0


def test_unwired_lossless_output_does_not_block(tmp_path: Path, running: list[Running]) -> None:
    path = write(tmp_path, """
nodes:
  camera:
    class: agentrt.nodes.synthetic:SyntheticSource
    rate_hz: 50
  policy:
    class: agentrt.nodes.echo:EchoPolicy
    inputs: {frames: camera.frames}
""")
    run = Running(Supervisor(load_launch(path), config=FAST, output=lambda line: None))
    running.append(run)
    figures = run.supervisor.telemetry.nodes
    wait_for(lambda: "policy" in figures and figures["policy"].total("in.frames.received") > 50)
    assert figures["policy"].restarts == 0


def test_a_run_ended_by_ends_run_while_another_node_fails_is_a_failure(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2
    import numpy as np

    monkeypatch.setenv("AGENTRT_RUN_DIR", str(tmp_path / "run"))
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"{i}.png"), np.full((8, 8, 3), i * 50, np.uint8))
    launch = tmp_path / "ends.yaml"
    launch.write_text(f"""
nodes:
  player:
    class: streams.node:SourceNode
    params: {{source: {{type: folder, path: {images}, fps: 5}}}}
    ends_run: true
    restart: never
  broken:
    class: agentrt.nodes.faults:CrashOnStart
    max_restarts: 50
    backoff_s: 0.3
""")
    code = Supervisor(load_launch(launch), config=FAST).run(duration_s=60)
    assert code == 1  # the player's normal end must not hide that 'broken' kept crashing
