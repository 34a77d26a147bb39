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
    agentrt demo --transport                       # the wire alone: camera -> policy stand-in -> robot stand-in
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agentrt.cli.common import add_seed
from agentrt.errors import ConfigError
from sims.tasks import TASK_NAMES

__all__ = ["add_arguments", "run"]


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


def run(args: argparse.Namespace) -> int:
    if args.transport:
        from agentrt.transport_demo import run_transport_demo

        args.out = args.out or "runs/demo"
        return run_transport_demo(args)
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    from policies.demo import AgentDemoConfig, run_agent_demo

    out = Path(args.out or "runs/agent-demo")
    tasks = TASK_NAMES if args.task == "all" else (args.task,)
    summaries = []
    for task in tasks:
        print(f"demo: the nano VLA drives the PyBullet '{task}' task, {args.episodes} held-out scenes "
              f"(seeds {args.seed}..), {args.clock}, {args.decoding} decoding", flush=True)
        cfg = AgentDemoConfig(task=task, episodes=args.episodes, seed=args.seed, clock=args.clock,
                              decoding=args.decoding, out_dir=str(out / task if len(tasks) > 1 else out),
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
