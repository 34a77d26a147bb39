"""A normal stop ends every node by itself, within the supervisor's grace: nobody is SIGKILLed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt.errors import TransportError
from agentrt.launch import load_launch
from agentrt.messages import Query
from agentrt.supervisor import Supervisor, SupervisorConfig
from agentrt.transport import Publisher, endpoint

ROOT = Path(__file__).resolve().parents[2]


def test_a_lossless_send_stops_waiting_when_told_to_give_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_RUN_DIR", str(tmp_path))
    asked: list[int] = []

    def give_up() -> bool:
        asked.append(1)
        return len(asked) >= 3

    with Publisher(endpoint("nobody"), lossless=True, send_timeout_ms=60_000) as pub:  # no receiver at all
        with pytest.raises(TransportError, match="no receiver"):
            pub.send(Query("q", 0, 0, "anyone?"), give_up=give_up)
    assert len(asked) == 3  # it kept asking while it waited, and stopped when told


def test_a_node_busy_when_the_stop_comes_still_exits_by_itself() -> None:
    # The policy is mid-inference (800 ms) when SIGTERM comes; the robot, its consumer, stops at
    # once. The chunk the policy then sends has nobody to take it: it must not wait out the 2 s send
    # timeout, which outlasts the 1.5 s grace and got it SIGKILLed.
    for _ in range(2):
        spec = load_launch(ROOT / "launch" / "pipeline_demo.yaml", ["policy.work_ms=800", "policy.warmup_s=0"])
        supervisor = Supervisor(spec, config=SupervisorConfig(grace_s=1.5), output=lambda line: None)
        assert supervisor.run(duration_s=2.5) == 0
        codes = {name: proc.popen.returncode for name, proc in supervisor.procs.items() if proc.popen is not None}
        assert codes == {"camera": 0, "policy": 0, "robot": 0}, f"a node was killed at the stop: {codes}"


_AFTER_STOP = """
import sys
import agentrt.supervisor as sup
from agentrt.cli.__main__ import main

imported = []
stopping = []
original = sup.Supervisor.shutdown

def shutdown(self):
    stopping.append(1)
    original(self)

def hook(event, args):
    if event == "import" and stopping:
        imported.append(args[0])

sup.Supervisor.shutdown = shutdown
sys.addaudithook(hook)
code = main(sys.argv[1:])
print("IMPORTED AFTER STOP:", " ".join(imported))
raise SystemExit(code)
"""


def test_the_exit_after_a_stop_does_not_wait_for_the_plotting_library(tmp_path: Path) -> None:
    # `agentrt run` writes its report after the nodes stop; importing matplotlib then (about a second
    # on a busy machine, most of the ~2 s between Ctrl-C and the prompt) is work the run can do earlier.
    env = {**os.environ, "AGENTRT_RUN_DIR": str(tmp_path / "run")}
    done = subprocess.run(
        [sys.executable, "-c", _AFTER_STOP, "run", str(ROOT / "launch" / "pipeline_demo.yaml"), "--duration", "2",
         "--no-status", "--report-dir", str(tmp_path / "runs")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    after = next(line for line in done.stdout.splitlines() if line.startswith("IMPORTED AFTER STOP:"))
    # the import began during the run (the top-level package comes first); on a loaded machine the warm-up
    # thread may still be importing submodules at the stop, which costs the exit only what is left of it
    assert "matplotlib" not in after.split()[3:], after
    assert list((tmp_path / "runs").glob("*/latency.png"))  # the plot is still there


def test_the_orphan_check_sees_a_child_left_running_but_not_pythons_resource_tracker() -> None:
    """`child_pids`, the tests' no-orphan check: a spawn-context Event starts multiprocessing's resource tracker,
    alive until this interpreter exits (not a leak of the run under test); a real child is still found."""
    import multiprocessing

    from agentrt.testing import child_pids

    multiprocessing.get_context("spawn").Event()  # starts the tracker if no earlier test did
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child_pids(os.getpid()) == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert child_pids(os.getpid()) == []
