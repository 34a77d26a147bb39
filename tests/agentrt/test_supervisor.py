"""Supervisor behaviour with real node processes: restarts, bounded failure, hangs, clean Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentrt.cli.__main__ import main
from agentrt.errors import LaunchError
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
    class: agentrt.nodes.faults:CrashOnStartNode
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
    class: agentrt.nodes.faults:CrashOnStartNode
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
    class: agentrt.nodes.faults:HangAfterNode
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
    class: agentrt.nodes.faults:IgnoreStopNode
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
    class: agentrt.nodes.synthetic:SyntheticFrameNode
    rate_hz: 50
  policy:
    class: agentrt.nodes.echo:EchoNode
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
    class: agentrt.nodes.faults:CrashOnStartNode
    max_restarts: 50
    backoff_s: 0.3
""")
    code = Supervisor(load_launch(launch), config=FAST).run(duration_s=60)
    assert code == 1  # the player's normal end must not hide that 'broken' kept crashing


def test_a_start_up_error_a_retry_meets_again_fails_at_once_with_its_message(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the port the web page wants is in use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(tmp_path, f"""
nodes:
  web:
    class: agentrt.web.node:WebNode
    params: {{port: {port}}}
    arm_after: []
    max_restarts: 5
    backoff_s: 0.05
""")
        supervisor = Supervisor(load_launch(path), config=FAST, output=lambda line: None)
        assert supervisor.run(duration_s=60) == 1
    assert supervisor.failure.startswith(f"node 'web' cannot start: web page: cannot listen on 127.0.0.1:{port}")
    assert "max_restarts" not in supervisor.failure and "\n" not in supervisor.failure
    assert f"{path}:3" in supervisor.failure
    assert len(supervisor.all_pids()) == 1  # not restarted
    assert not any(alive(pid) for pid in supervisor.all_pids())


def test_an_error_a_retry_meets_again_after_start_up_ends_the_run_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, """
nodes:
  policy:
    class: agentrt.nodes.faults:RefuseAfterNode
    params: {ticks: 5}
    max_restarts: 5
    backoff_s: 0.05
""")
    supervisor = Supervisor(load_launch(path), config=FAST, output=lambda line: None)
    assert supervisor.run(duration_s=60) == 1
    assert supervisor.failure.startswith("node 'policy' cannot go on: refused after 5 ticks")
    assert "max_restarts" not in supervisor.failure and "\n" not in supervisor.failure
    assert len(supervisor.all_pids()) == 1  # not restarted
    assert not any(alive(pid) for pid in supervisor.all_pids())


def test_missing_curve_keys_fail_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    path = write(tmp_path, """
hosts:
  local: {address: 127.0.0.1}
  robot: {address: 127.0.0.1}
keys: keys/
nodes:
  camera:
    class: agentrt.nodes.synthetic:SyntheticFrameNode
  policy:
    class: agentrt.nodes.echo:EchoNode
    inputs: {frames: camera.frames}
    host: robot
""")
    before = set(children(os.getpid()))
    for host in ("local", "robot"):
        with pytest.raises(LaunchError, match="CURVE key file .* is missing"):
            Supervisor(load_launch(path), host=host, config=FAST, output=lambda line: None)
    assert set(children(os.getpid())) == before


@pytest.mark.parametrize("ended_by", ["duration", "ends_run"])
def test_a_run_that_ends_while_a_node_crash_loops_fails_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str],
                                                                  ended_by: str) -> None:
    monkeypatch.setenv("AGENTRT_RUN_DIR", str(tmp_path / "run"))
    ender = """
  clip:
    class: streams.node:SourceNode
    params: {source: {type: synthetic, width: 32, height: 32, fps: 10, frames: 30}}
    ends_run: true
    restart: never
""" if ended_by == "ends_run" else ""
    path = write(tmp_path, f"""
nodes:
  cam:
    class: agentrt.nodes.faults:CrashOnStartNode
    params: {{message: "no file at clips/missing.mp4"}}
    max_restarts: 50
    backoff_s: 0.3
{ender}""")
    duration = "60" if ended_by == "ends_run" else "3"
    code = main(["run", str(path), "--duration", duration, "--no-status", "--report-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("agentrt run: error: node 'cam' was still failing when "), err
    assert "no file at clips/missing.mp4" in err[0]


def test_a_node_that_never_became_ready_fails_a_timed_run(tmp_path: Path) -> None:
    path = write(tmp_path, """
nodes:
  camera:
    class: agentrt.nodes.synthetic:SyntheticFrameNode
    rate_hz: 20
  policy:
    class: agentrt.nodes.echo:EchoNode
    inputs: {frames: camera.frames}
    params: {warmup_s: 600}
""")
    supervisor = Supervisor(load_launch(path), config=FAST, output=lambda line: None)
    assert supervisor.run(duration_s=2) == 1
    assert supervisor.failure.startswith("node 'policy' never became ready: the run ended after 2 s")
    assert not any(alive(pid) for pid in supervisor.all_pids())


def test_stopping_during_start_up_is_clean_and_no_failure(tmp_path: Path) -> None:
    path = write(tmp_path, """
nodes:
  policy:
    class: agentrt.nodes.echo:EchoNode
    params: {warmup_s: 600}
""")
    lines: list[str] = []
    warnings: list[str] = []
    supervisor = Supervisor(load_launch(path), config=FAST, output=lines.append)
    handler = _ListHandler(warnings)
    logging.getLogger("agentrt.supervisor").addHandler(handler)
    try:
        run = Running(supervisor)
        wait_for(lambda: "policy" in supervisor.telemetry.nodes and supervisor.pids().get("policy") is not None)
        time.sleep(0.5)  # well inside setup()'s warm-up
        assert run.finish() == 0
    finally:
        logging.getLogger("agentrt.supervisor").removeHandler(handler)
    assert supervisor.failure == ""
    assert not any("did not stop" in w for w in warnings), warnings  # it stopped on SIGTERM, not SIGKILL
    assert not any("Traceback" in line for line in lines), lines
    assert not any(alive(pid) for pid in supervisor.all_pids())


class _ListHandler(logging.Handler):
    def __init__(self, out: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        self.out.append(record.getMessage())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_each_node_process_shows_its_name(running: list[Running]) -> None:
    spec = load_launch(DEMO, ["camera.rate_hz=20", "policy.warmup_s=0"])
    run = Running(Supervisor(spec, config=FAST, output=lambda line: None))
    running.append(run)
    wait_for(lambda: len(run.supervisor.pids()) == 3)
    for name, pid in run.supervisor.pids().items():
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert args[args.index("--node") + 1] == name, args  # `ps` / `ps aux`
        wait_for(lambda pid=pid, name=name: Path(f"/proc/{pid}/comm").read_text().strip() == name)  # `ps -o comm`
