"""Nothing stale: each process removes the sockets and folders it made; a start sweeps what dead ones left."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentrt import runfiles
from agentrt import shm as shm_module
from agentrt.cli.__main__ import main
from agentrt.launch import load_launch
from agentrt.supervisor import Supervisor
from agentrt.testing import child_pids, process_alive
from agentrt.transport import Publisher, Subscriber, endpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="rf-"))  # short: a socket path has at most 107 characters
    monkeypatch.setenv("AGENTRT_RUN_DIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def wait_for(condition: Callable[[], bool], timeout_s: float = 120.0) -> None:  # a loaded machine starts torch slowly
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def everything(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def dead_socket(path: Path) -> Path:
    """A socket file nobody listens on (what a killed process leaves), older than the sweep's grace."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


def our_segments() -> set[str]:
    return {p.name for p in shm_module.SHM_DIR.glob(f"agentrt-{os.getpid()}-*")}


def test_publishers_and_subscribers_remove_the_socket_file_they_bound(run_dir: Path) -> None:
    for make in (lambda: Publisher(endpoint("cam")), lambda: Publisher(endpoint("acts"), lossless=True),
                 lambda: Subscriber(endpoint("in"), bind=True)):
        with make() as bound:
            name = Path(bound.address).name
            assert everything(run_dir) == [name, f"{name}.lock"]  # the socket and its endpoint lock (one binder)
        assert everything(run_dir) == []


# A socket another program has bound since is left alone: tests/agentrt/test_transport.py
# (test_a_publisher_removes_the_ipc_socket_file_it_bound_and_no_other).


def test_a_bind_sweeps_what_dead_processes_left_in_its_folder(run_dir: Path) -> None:
    stale = dead_socket(run_dir / "old-camera")
    dead_run = run_dir / "pipeline_demo-abc"
    dead_run.mkdir()
    (dead_run / runfiles.OWNER_FILE).write_text(f"{dead_pid()} 1\n")
    dead_socket(dead_run / "control")
    unstamped = run_dir / "older-run"  # a run folder of the old layout: only dead sockets in it
    unstamped.mkdir()
    dead_socket(unstamped / "camera.frames")
    os.utime(unstamped, (time.time() - 60, time.time() - 60))
    live_run = runfiles.owned_dir(run_dir, "live-")
    other = run_dir / "notes.txt"
    other.write_text("not ours")
    with Publisher(endpoint("live")):
        with Publisher(endpoint("cam")):
            names = everything(run_dir)
    assert not stale.exists() and not dead_run.exists() and not unstamped.exists()
    assert live_run.is_dir() and other.exists()
    assert "live" in names and "cam" in names
    runfiles.remove_dir(live_run)


def test_a_reused_pid_does_not_keep_a_folder_alive(tmp_path: Path) -> None:
    folder = tmp_path / "x-1"
    folder.mkdir()
    (folder / runfiles.OWNER_FILE).write_text(f"{os.getpid()} 1\n")  # our pid, another process's start time
    assert not runfiles.owner_alive(folder)
    assert runfiles.sweep(tmp_path) == ["x-1"]


def test_stream_removes_its_socket_also_when_its_source_fails_to_open(run_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    assert main(["stream", str(broken), "--quiet"]) == 2
    assert everything(run_dir) == []
    assert main(["stream", "synthetic:64x48@200", "--frames", "3", "--quiet"]) == 0
    assert everything(run_dir) == []


def test_transport_demo_leaves_nothing(run_dir: Path, tmp_path: Path) -> None:
    assert main(["demo", "--transport", "--duration", "0.5", "--out", str(tmp_path / "out")]) == 0
    assert everything(run_dir) == []
    assert our_segments() == set()


def test_bench_transport_peers_leave_nothing(run_dir: Path) -> None:
    from agentrt.bench import transport as bench

    for method in ("shm", "zmq-ipc"):
        figures = bench._one_way(method, 48, 64, count=3)
        assert figures["p50_us"] > 0
    assert everything(run_dir) == []
    assert our_segments() == set()


def test_a_killed_supervisors_run_folder_is_swept_by_the_next_start(run_dir: Path, tmp_path: Path) -> None:
    launch = ROOT / "launch" / "pipeline_demo.yaml"
    env = {**os.environ, "AGENTRT_RUN_DIR": str(run_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "agentrt.cli", "run", str(launch), "--no-status",
                             "--report-dir", str(tmp_path / "runs")], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    nodes: list[int] = []
    try:
        wait_for(lambda: any(p.name.startswith("pipeline_demo-") for p in run_dir.iterdir()))
        wait_for(lambda: len(child_pids(proc.pid)) == 3)
        nodes = child_pids(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_for(lambda: not any(process_alive(pid) for pid in nodes))  # they follow their supervisor
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in nodes:
            if process_alive(pid):
                os.killpg(pid, signal.SIGKILL)
    left = [p for p in run_dir.iterdir() if p.name.startswith("pipeline_demo-")]
    assert len(left) == 1  # SIGKILL: nobody could clean up

    supervisor = Supervisor(load_launch(launch))  # a new start, no node started yet
    try:
        assert not left[0].exists()
    finally:
        supervisor.shutdown()
    assert everything(run_dir) == []


def test_a_killed_bench_qa_leaves_its_temp_folder_to_the_next_start(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "agentrt.cli", "bench", "qa", "--quick"], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def folders() -> list[Path]:
        return sorted(tmp_path.glob("agentrt-bench-qa-*"))

    first = start()
    try:
        wait_for(lambda: len(folders()) == 1)
        killed = folders()[0]
        first.kill()
        first.wait()
        assert killed.exists()
        second = start()
        try:
            wait_for(lambda: folders() and killed not in folders())  # swept by the second start
            second.terminate()  # SIGTERM: the second removes its own on the way out
            second.wait(timeout=60)
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert folders() == []


def test_sigterm_unwinds_a_command_like_ctrl_c(tmp_path: Path) -> None:
    # What makes `finally` blocks run: the command returns 130, not death by signal.
    code = "import os, signal; from agentrt.cli.__main__ import main; import agentrt.cli.demo as d\n" \
           "d.run = lambda args: os.kill(os.getpid(), signal.SIGTERM) or 0\n" \
           "raise SystemExit(main(['demo']))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert "interrupted" in done.stderr


def test_owned_temporary_dir_is_removed_on_the_way_out(tmp_path: Path) -> None:
    with runfiles.temporary_dir("agentrt-x-", parent=tmp_path) as folder:
        assert folder.is_dir() and (folder / runfiles.OWNER_FILE).exists()
    assert list(tmp_path.iterdir()) == []

