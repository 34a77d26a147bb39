"""One planning schedule (lockstep / real time, lead_steps, execute_steps) for every planner."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from agentrt.errors import ConfigError
from agentrt.scheduler import CLOCKS, ChunkSchedule, PlanGate


def test_steps_to_run_lockstep_takes_the_first_steps_and_real_time_drops_the_late_ones() -> None:
    chunk = np.arange(8, dtype=np.float32)[:, None].repeat(4, axis=1)
    assert ChunkSchedule("lockstep", 20, execute_steps=4).steps_to_run(chunk, t_capture_ns=0).shape[0] == 4
    assert ChunkSchedule("lockstep", 20, execute_steps=0).steps_to_run(chunk, t_capture_ns=0).shape[0] == 8
    realtime = ChunkSchedule("realtime", 20, execute_steps=4)
    now = 10**12
    late_by_3 = realtime.steps_to_run(chunk, t_capture_ns=now - 160_000_000, now_ns=now)
    assert late_by_3[0, 0] == 3  # 0.16 s at 20 Hz: three steps went by
    very_late = realtime.steps_to_run(chunk, t_capture_ns=now - 10**10, now_ns=now)
    assert very_late.shape[0] == 4  # never more than half dropped


def test_a_plan_is_due_when_the_chunk_runs_out_in_lockstep_and_with_lead_steps_left_in_real_time() -> None:
    lockstep, realtime = ChunkSchedule("lockstep", lead_steps=4), ChunkSchedule("realtime", lead_steps=4)
    assert lockstep.due(0) and not lockstep.due(1) and not lockstep.due(4)
    assert realtime.due(0) and realtime.due(4) and not realtime.due(5)


def test_the_gate_answers_each_lockstep_frame_once() -> None:
    gate = PlanGate(ChunkSchedule("lockstep"))
    assert gate.due(0)
    gate.sent(0, 4)
    assert not gate.due(0)  # the sim republishes the frame until answered: answered once
    assert gate.due(1)


def test_the_gate_plans_again_in_real_time_when_the_chunk_sent_is_down_to_lead_steps() -> None:
    gate = PlanGate(ChunkSchedule("realtime", control_hz=20, lead_steps=4))
    assert gate.due(0, now_s=100.0)
    gate.sent(0, 8, now_s=100.0)  # 8 steps: 4 of them (0.2 s at 20 Hz) run before lead_steps are left
    assert not gate.due(1, now_s=100.19)
    assert gate.due(1, now_s=100.2)
    gate.sent(1, 2, now_s=200.0)  # fewer than lead_steps: plan again a tick later, not at once
    assert not gate.due(2, now_s=200.0) and gate.due(2, now_s=200.05)
    gate.new_episode()  # nothing in flight for the new episode's robot
    assert gate.due(3, now_s=200.0)


@pytest.mark.parametrize("kwargs", [{"clock": "wall"}, {"control_hz": 0}, {"lead_steps": -1}, {"execute_steps": -1}])
def test_bad_schedules_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="expected"):
        ChunkSchedule(**kwargs)  # type: ignore[arg-type]


def test_the_policy_node_and_the_sim_clock_use_the_one_schedule() -> None:
    from policies.vla.node import NanoVLANodeConfig
    from sims.clock import CLOCKS as SIM_CLOCKS

    assert SIM_CLOCKS is CLOCKS
    config = NanoVLANodeConfig(clock="realtime", control_hz=10.0, lead_steps=3, execute_steps=2)
    assert config.schedule == ChunkSchedule("realtime", 10.0, lead_steps=3, execute_steps=2)
    with pytest.raises(ConfigError, match="clock"):
        NanoVLANodeConfig(clock="wall")


def test_the_in_process_source_refuses_a_loop_on_another_clock() -> None:
    from agentrt.chunks import ChunkQueue
    from policies.vla.policy import PolicySource

    source = PolicySource(None, schedule=ChunkSchedule("realtime"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="same clock"):
        source.fetch(ChunkQueue(), wait=True, stop=threading.Event())


def test_the_policy_modules_do_not_import_the_simulator() -> None:
    """The policy node runs beside real robots too: planning must not pull in sims/ (it is the runtime's)."""
    code = ("import sys, policies.vla.node, policies.vla.policy; "
            "print(sorted(m for m in sys.modules if m == 'sims' or m.startswith('sims.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
