"""`agentrt bench loop`: the control loop of a 3-node pipeline at 100 Hz with empty work.

launch/pipeline_demo.yaml (synthetic source -> stand-in policy -> actuator
stand-in), each node its own process under the supervisor, ipc between them.
Figures: the source's achieved rate vs target, the share of its cycles that
ended after the next was due (target <= 0.01), and the latency of one hop
(a node's send to the next node's send or receipt), from every frame's trace.

    agentrt bench loop --quick
    agentrt bench loop --json loop.json
"""

from __future__ import annotations

import logging
from typing import Any

from agentrt.bench.report import print_rows
from agentrt.launch import load_launch
from agentrt.resources import launch_dir
from agentrt.supervisor import Supervisor

__all__ = ["run", "print_table", "LAUNCH_FILE"]

LAUNCH_FILE = launch_dir() / "pipeline_demo.yaml"
TARGET_HZ = 100.0
OVER_BUDGET_TARGET = 0.01


def run(quick: bool = False) -> dict[str, Any]:
    duration_s = 10.0 if quick else 30.0
    spec = load_launch(LAUNCH_FILE, [f"camera.rate_hz={TARGET_HZ:g}", "policy.warmup_s=0", "policy.steps=1"])
    logging.getLogger("agentrt.supervisor").setLevel(logging.WARNING)
    supervisor = Supervisor(spec, output=lambda line: None)
    code = supervisor.run(duration_s=duration_s)
    summary = supervisor.telemetry.summary()
    camera = summary["nodes"].get("camera", {})
    hop = summary["hop_us"]
    return {
        "target_hz": TARGET_HZ,
        "rate_hz": camera.get("rate_hz", 0.0),
        "over_budget_share": summary["over_budget_share"],
        "hop_p50_us": hop.get("p50", float("nan")),
        "hop_p99_us": hop.get("p99", float("nan")),
        "e2e_p50_us": summary["latency_ms"].get("p50", float("nan")) * 1e3,
        "e2e_p99_us": summary["latency_ms"].get("p99", float("nan")) * 1e3,
        "frames": summary["traces"],
        "cycles": camera.get("ticks", 0),
        "dropped": summary["dropped"],
        "restarts": summary["restarts"],
        "duration_s": duration_s,
        "exit_code": code,
        "hops_us": summary["hops_us"],
    }


def print_table(result: dict[str, Any]) -> None:
    ok = result["over_budget_share"] <= OVER_BUDGET_TARGET
    rows = [
        ["control rate", f"{result['rate_hz']:.2f} Hz", f"target {result['target_hz']:g} Hz"],
        ["cycles over budget", f"{100 * result['over_budget_share']:.2f} %",
         f"target <= {100 * OVER_BUDGET_TARGET:g} % ({'met' if ok else 'MISSED'})"],
        ["hop latency p50", f"{result['hop_p50_us']:.0f} us", "send -> next node"],
        ["hop latency p99", f"{result['hop_p99_us']:.0f} us", ""],
        ["capture -> actuation p50", f"{result['e2e_p50_us']:.0f} us", f"{result['frames']} frames"],
        ["capture -> actuation p99", f"{result['e2e_p99_us']:.0f} us", ""],
        ["dropped / restarts", f"{result['dropped']:.0f} / {result['restarts']}", f"{result['cycles']:.0f} cycles"],
    ]
    print_rows("loop: 3 nodes, 100 Hz, empty work", ["figure", "value", "note"], rows)
