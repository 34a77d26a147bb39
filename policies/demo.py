"""The agent demo: the nano VLA drives a PyBullet task through the runtime (sim node + policy node).

``run_agent_demo`` loads ``launch/sim.yaml`` for the task, points the video and results
into ``out``, runs it under the supervisor until the sim's episodes are done,
writes the telemetry report beside them and returns a summary: success rate,
control rate, capture-to-chunk latency (p50 / p99), episodes.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrt.errors import ConfigError
from agentrt.resources import launch_dir
from sims.tasks import TASK_NAMES

__all__ = ["AgentDemoConfig", "run_agent_demo", "LAUNCH_DIR"]

log = logging.getLogger(__name__)

LAUNCH_DIR = launch_dir()  # the shipped launch files: launch/ in a checkout, inside the package when installed


@dataclass
class AgentDemoConfig:
    task: str = "reach"
    episodes: int = 3
    seed: int = 100_000  # held-out scenes: training used other seeds
    clock: str = "realtime"
    decoding: str = "consistency"
    timeout_s: float = 120.0
    out_dir: str = "runs/agent-demo"

    def __post_init__(self) -> None:
        if self.task not in TASK_NAMES:
            raise ConfigError(f"AgentDemoConfig.task: expected one of {', '.join(TASK_NAMES)}, got {self.task!r}")
        if self.episodes < 1 or self.timeout_s <= 0:
            raise ConfigError(f"AgentDemoConfig: expected episodes >= 1 and timeout_s > 0, got {self.episodes}, {self.timeout_s}")


def run_agent_demo(cfg: AgentDemoConfig, output: Callable[[str], None] | None = None) -> dict[str, Any]:
    from agentrt.launch import LOCAL_HOST, load_launch
    from agentrt.supervisor import Supervisor

    out = Path(cfg.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    results.unlink(missing_ok=True)
    video = out / f"{cfg.task}.mp4"
    overrides = [
        f"sim.task={cfg.task}", f"sim.episodes={cfg.episodes}", f"sim.seed={cfg.seed}",
        f"sim.clock={cfg.clock}", f"policy.decoding={cfg.decoding}",  # the policy takes the sim's clock
        f"sim.video_path={video}", f"sim.results_path={results}",
    ]
    spec = load_launch(LAUNCH_DIR / "sim.yaml", overrides)
    supervisor = Supervisor(spec, host=LOCAL_HOST, output=output)
    code = supervisor.run(duration_s=cfg.timeout_s)
    report_json, report_png = supervisor.telemetry.write_report(out)
    episodes = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    lat = json.loads(report_json.read_text()).get("latency_ms", {})
    summary: dict[str, Any] = {
        "task": cfg.task, "decoding": cfg.decoding, "clock": cfg.clock,
        "episodes": len(episodes), "successes": sum(bool(e["success"]) for e in episodes),
        "success_rate": sum(bool(e["success"]) for e in episodes) / len(episodes) if episodes else 0.0,
        "control_hz": statistics.median(e["steps"] / e["time_s"] for e in episodes) if episodes else 0.0,
        "latency_p50_ms": lat.get("p50", 0.0), "latency_p99_ms": lat.get("p99", 0.0),
        "watchdog_holds": sum(int(e.get("watchdog_holds", 0)) for e in episodes),
        "videos": sorted(str(p) for p in out.glob(f"{cfg.task}*.mp4")),
        "report": str(report_json), "plot": str(report_png) if report_png else "",
        "exit_code": code, "failure": supervisor.failure,
        "per_episode": [{"seed": e["seed"], "instruction": e["instruction"], "success": e["success"], "steps": e["steps"]}
                        for e in episodes],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
