"""`agentrt demo`: the main job. The bundled nano VLA drives a PyBullet robot through the runtime.

Two supervised processes, as `agentrt run launch/sim.yaml` starts them:
the simulator (Franka Panda, a seeded scene it never saw in training, real time
at 20 Hz) publishes camera frames and robot state, instruction included; the
policy node runs the nano VLA (consistency-distilled, early-exit Jacobi
decoding) and sends action chunks back early enough that the robot never
waits. Prints each episode and a summary (success, control rate,
capture-to-chunk latency) and leaves an MP4 per episode, the telemetry report
(JSON + PNG) and summary.json in the output folder.

    agentrt demo                                   # reach, push, pick_place: 3 held-out scenes each, runs/agent-demo/
    agentrt demo --task push --episodes 5
    agentrt demo --device cpu                      # the policy on the CPU even where there is a GPU (default auto)
    agentrt demo --transport                       # the wire alone: camera -> policy stand-in -> robot stand-in

`--transport` runs ``launch/pipeline_demo.yaml`` under the supervisor (as `agentrt run` does) with
640x480 frames at --fps, so they travel over the shared-memory ring: a synthetic camera, a
stand-in policy that answers each frame with an ActionChunk (lossless), and a stand-in robot.
It prints what the telemetry measured (frames, chunks executed, capture-to-actuation p50 / p99,
bad and dropped messages) and leaves report.json, latency.png and summary.json in the output folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrt.cli.common import add_device, add_seed
from agentrt.errors import ConfigError
from agentrt.resources import launch_dir
from sims.tasks import TASK_NAMES

__all__ = ["add_arguments", "run", "AgentDemoConfig", "run_agent_demo", "run_transport_demo"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="all", choices=[*TASK_NAMES, "all"],
                        help=f"which task (default all: {', '.join(TASK_NAMES)} one after another)")
    parser.add_argument("--episodes", type=int, default=3, help="episodes per task, held-out scenes (default 3)")
    add_seed(parser, 100_000, "first scene seed (default 100000: never trained on)")
    parser.add_argument("--decoding", default="consistency", choices=["ar", "jacobi", "consistency"],
                        help="action decoding (default consistency: the distilled weights, early-exit Jacobi)")
    parser.add_argument("--clock", default="realtime", choices=["realtime", "lockstep"], help="default realtime")
    parser.add_argument("--out", default="", help="output folder (default runs/agent-demo, or runs/demo with --transport)")
    parser.add_argument("--transport", action="store_true", help="run the transport demo instead (no model, no simulator)")
    parser.add_argument("--duration", type=float, default=5.0, help="--transport: seconds to run (default 5)")
    parser.add_argument("--fps", type=float, default=30.0, help="--transport: camera rate (default 30)")
    add_device(parser)


def run(args: argparse.Namespace) -> int:
    if args.transport:
        return run_transport_demo(duration_s=args.duration, fps=args.fps, out=Path(args.out or "runs/demo"))
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    from agentrt.engine.device import Placement

    placement = Placement.parse(args.device, args.dtype)  # a GPU asked for and not here: one line, before any node
    out = Path(args.out or "runs/agent-demo")
    tasks = TASK_NAMES if args.task == "all" else (args.task,)
    summaries = []
    for task in tasks:
        print(f"demo: the nano VLA drives the PyBullet '{task}' task, {args.episodes} held-out scenes "
              f"(seeds {args.seed}..), {args.clock}, {args.decoding} decoding on {placement.device}", flush=True)
        cfg = AgentDemoConfig(task=task, episodes=args.episodes, seed=args.seed, clock=args.clock,
                              decoding=args.decoding, out_dir=str(out / task if len(tasks) > 1 else out),
                              device=args.device, dtype=args.dtype,
                              timeout_s=60.0 + 15.0 * args.episodes * (2 if task == "pick_place" else 1))
        summary = run_agent_demo(cfg, output=_quiet_output)
        _print_summary(summary)
        summaries.append(summary)
    if len(summaries) > 1:
        done = sum(s["episodes"] for s in summaries)
        won = sum(s["successes"] for s in summaries)
        print(f"demo: {won}/{done} episodes succeeded across {', '.join(tasks)}; everything is in {out}/")
    worked = all(s["episodes"] == args.episodes and not s["failure"] for s in summaries)
    if not worked:
        failure = next((s["failure"] for s in summaries if s["failure"]), "")
        print(f"demo: the run did not finish its episodes{': ' + failure if failure else ''}; see the log above",
              file=sys.stderr)
        return 1
    return 0


def _quiet_output(line: str) -> None:
    """The supervisor's lines: keep the nodes' episode results and problems, drop the chatter."""
    if "episode" in line or "error" in line.lower() or "warning" in line.lower():
        print(line, flush=True)


def _print_summary(s: dict[str, Any]) -> None:
    from agentrt.bench.report import print_rows

    rows = [
        ["task", s["task"]],
        ["success", f"{s['successes']}/{s['episodes']} ({s['success_rate']:.0%})"],
        ["control rate", f"{s['control_hz']:.1f} Hz"],
        ["capture -> chunk p50 / p99", f"{s['latency_p50_ms']:.1f} / {s['latency_p99_ms']:.1f} ms"],
        ["robot waited for a chunk", f"{s['watchdog_holds']} times"],
    ]
    print_rows(f"agent demo: {s['task']}", ["measure", "value"], rows)
    for e in s["per_episode"]:
        print(f"  seed {e['seed']}: {e['instruction']!r}: {'success' if e['success'] else 'fail'} in {e['steps']} steps")
    print(f"videos: {', '.join(s['videos']) or 'none'}")
    print(f"report: {s['report']}{', ' + s['plot'] if s['plot'] else ''}")


@dataclass
class AgentDemoConfig:
    task: str = "reach"
    episodes: int = 3
    seed: int = 100_000  # held-out scenes: training used other seeds
    clock: str = "realtime"
    decoding: str = "consistency"
    timeout_s: float = 120.0
    device: str = "auto"  # the policy node's (agentrt.engine.device)
    dtype: str = "float32"
    out_dir: str = "runs/agent-demo"

    def __post_init__(self) -> None:
        if self.task not in TASK_NAMES:
            raise ConfigError(f"AgentDemoConfig.task: expected one of {', '.join(TASK_NAMES)}, got {self.task!r}")
        if self.episodes < 1 or self.timeout_s <= 0:
            raise ConfigError(f"AgentDemoConfig: expected episodes >= 1 and timeout_s > 0, got {self.episodes}, {self.timeout_s}")


def run_agent_demo(cfg: AgentDemoConfig, output: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``launch/sim.yaml`` for the task under the supervisor, video and results into ``cfg.out_dir``, until the
    sim's episodes are done; writes the telemetry report and summary.json beside them and returns the summary:
    success rate, control rate, capture-to-chunk latency (p50 / p99), episodes."""
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
        f"policy.device='{cfg.device}'", f"policy.dtype={cfg.dtype}",
        f"sim.video_path={video}", f"sim.results_path={results}",
    ]
    spec = load_launch(launch_dir() / "sim.yaml", overrides)  # launch/ in a checkout, the package's when installed
    supervisor = Supervisor(spec, host=LOCAL_HOST, output=output)
    code = supervisor.run(duration_s=cfg.timeout_s)
    report_json, report_png = supervisor.telemetry.write_report(out)
    episodes = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    lat = json.loads(report_json.read_text()).get("latency_ms", {})
    summary: dict[str, Any] = {
        "task": cfg.task, "decoding": cfg.decoding, "clock": cfg.clock, "device": cfg.device, "dtype": cfg.dtype,
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


def run_transport_demo(*, duration_s: float, fps: float, out: Path) -> int:
    """``launch/pipeline_demo.yaml`` under the supervisor for ``duration_s``, 640x480 frames at ``fps``."""
    if duration_s <= 0 or fps <= 0:
        raise ConfigError(f"--duration and --fps must be > 0, got {duration_s:g} and {fps:g}")
    from agentrt.bench.report import print_rows
    from agentrt.launch import LOCAL_HOST, load_launch
    from agentrt.supervisor import Supervisor

    # 640x480x3 frames are over SHM_MIN_BYTES: they go through the shared-memory ring, as a camera's would
    spec = load_launch(launch_dir() / "pipeline_demo.yaml",
                       [f"camera.rate_hz={fps:g}", "camera.width=640", "camera.height=480"])
    print(f"demo: {spec.path.name} under the supervisor: camera {fps:g} fps 640x480 -> policy stand-in -> "
          f"robot stand-in, {duration_s:g} s (shared-memory frames, lossless actions)", flush=True)
    supervisor = Supervisor(spec, host=LOCAL_HOST, output=_quiet_output)
    window = _Window(supervisor, duration_s)
    window.start()
    try:
        supervisor.run()
    finally:
        window.finish()
    report_json, report_png = supervisor.telemetry.write_report(out)
    summary = transport_summary(json.loads(report_json.read_text()), fps=fps, measured_s=window.measured_s())
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print_rows("transport demo", ["measure", "value"],
               [[key, float(value)] for key, value in summary.items()])
    print(f"report: {report_json}{', ' + str(report_png) if report_png else ''}, {out / 'summary.json'}")
    if supervisor.failure or not summary["chunks_executed"]:
        why = supervisor.failure or "no action chunk reached the robot"
        print(f"demo: {why}; see the log above", file=sys.stderr)
        return 1
    return 0


class _Window(threading.Thread):
    """Stops the run ``duration_s`` after every node is running: --duration times the pipeline, not its start."""

    def __init__(self, supervisor: Any, duration_s: float) -> None:
        super().__init__(name="demo-window", daemon=True)
        self.supervisor, self.duration_s = supervisor, duration_s
        self.began = self.ended = 0.0
        self._over = threading.Event()

    def run(self) -> None:
        nodes, wanted = self.supervisor.telemetry.nodes, len(self.supervisor.spec.nodes)
        while not self._over.wait(0.02):
            if len(nodes) == wanted and all(n.state == "running" for n in list(nodes.values())):
                self.began = time.monotonic()
                if not self._over.wait(self.duration_s):
                    self.supervisor.request_stop()
                return

    def finish(self) -> None:
        self.ended = time.monotonic()
        self._over.set()
        self.join()

    def measured_s(self) -> float:
        """Seconds from every node running to the end of the run (0: they never all ran)."""
        return self.ended - self.began if self.began else 0.0


def transport_summary(report: dict[str, Any], *, fps: float, measured_s: float) -> dict[str, float]:
    """The transport demo's figures, read from the supervisor's telemetry report (report.json)."""
    nodes = report["nodes"]
    camera, policy, robot = nodes["camera"], nodes["policy"], nodes["robot"]
    latency = report["latency_ms"]
    frame_hop = report["hops_us"].get("camera->policy", {})
    return {
        "duration_s": measured_s,  # every node running; the run's start is in report.json's duration_s
        "camera_fps": fps,
        "frames_sent": camera["sent"],
        "frames_received": policy["received"],
        "frames_dropped": policy["dropped"],  # latest-only: the policy skips frames it was too slow for
        "bad_messages": report["bad"],
        "policy_hz": policy["sent"] / measured_s if measured_s else 0.0,  # chunks sent per second
        "frame_hop_p50_ms": frame_hop.get("p50", float("nan")) / 1e3,
        "chunks_executed": robot["received"],
        "capture_to_actuation_p50_ms": latency.get("p50", float("nan")),
        "capture_to_actuation_p99_ms": latency.get("p99", float("nan")),
        "restarts": report["restarts"],
    }
