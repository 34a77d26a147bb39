"""`agentrt sim TASK`: run a PyBullet task with its scripted expert and report per-episode results.

Tasks (the target's shape and colour vary with the seed):
  reach       "touch the red cube"              a cube, cylinder or sphere
  push        "push the blue cube to the left"  a cube or cylinder
  pick_place  "put the green cube in the tray"  a cube or cylinder
Robots: panda (default), kuka_iiwa (no gripper: reach and push), xarm6.

    agentrt sim reach
    agentrt sim reach --episodes 3 --video runs/reach.mp4
    agentrt sim push --episodes 20 --seed 100 --json runs/push.json
    agentrt sim pick_place --clock realtime --video runs/pick.mp4 --size 224
    agentrt sim reach --robot kuka_iiwa --episodes 5
    agentrt sim pick_place --gui              # PyBullet window, real time; needs a display

The lockstep clock (default without --gui) is deterministic for a seed and
runs as fast as the machine allows; realtime paces control to the wall clock.
With several episodes, --video writes one file per episode (reach-ep000.mp4, ...).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from agentrt.cli.common import add_seed
from sims.tasks import TASK_NAMES

__all__ = ["add_arguments", "run"]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help=f"{', '.join(TASK_NAMES)} (see above)")
    parser.add_argument("--episodes", type=int, default=1, help="number of episodes (default 1)")
    add_seed(parser, 0, "seed of the first episode; episode i uses seed + i (default 0)")
    parser.add_argument("--robot", default="panda", help="panda, kuka_iiwa or xarm6 (default panda)")
    parser.add_argument("--clock", choices=("lockstep", "realtime"), default=None, help="default: lockstep, realtime with --gui")
    parser.add_argument("--control-hz", type=float, default=20.0, help="control rate (default 20)")
    parser.add_argument("--video", metavar="PATH",
                        help="write an MP4 of each episode (a 384x288 viewer camera, rendered in its own process)")
    parser.add_argument("--size", type=int, default=128, help="camera image size in pixels, square (default 128)")
    parser.add_argument("--renderer", choices=("auto", "egl", "tiny"), default="auto", help="default: EGL if it loads, else TinyRenderer")
    parser.add_argument("--gui", action="store_true", help="show the PyBullet GUI (needs a display)")
    parser.add_argument("--json", metavar="PATH", help="write per-episode results and the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from agentrt.errors import ConfigError
    from sims.camera import SceneCameraConfig
    from sims.clock import make_clock
    from sims.env import SimEnv, SimEnvConfig
    from sims.loop import EpisodeResult, ExpertSource, episode_video_path, run_episode
    from sims.robot import RobotConfig
    from sims.viewer import Viewer
    from sims.world import WorldConfig

    if args.episodes < 1:
        raise ConfigError(f"--episodes: expected >= 1, got {args.episodes}")
    clock_name = args.clock or ("realtime" if args.gui else "lockstep")
    config = SimEnvConfig(
        task=args.task,
        robot=RobotConfig(robot=args.robot, control_hz=args.control_hz),
        world=WorldConfig(gui=args.gui),
        camera=SceneCameraConfig(width=args.size, height=args.size, renderer=args.renderer),
    )
    results: list[EpisodeResult] = []
    with SimEnv(config) as env, Viewer() as viewer:  # the viewer's process starts with the first video
        source = ExpertSource(env)
        print(f"task {config.task}, robot {args.robot}, {clock_name} clock at {args.control_hz:g} Hz, renderer {env.renderer}")
        progress, bar = _progress(args.episodes)
        with progress:
            for episode in range(args.episodes):
                seed = args.seed + episode
                video = None
                if args.video:
                    video = viewer.episode(episode_video_path(args.video, episode, args.episodes), fps=args.control_hz)
                try:
                    result = run_episode(env, make_clock(clock_name, args.control_hz), source, seed=seed, video=video)
                finally:
                    if video is not None:
                        video.close()
                results.append(result)
                mark = "[green]success[/]" if result.success else "[red]failure[/]"
                progress.console.print(
                    f"episode {episode:3d}  seed {seed:5d}  {mark}  {result.steps:4d} steps  "
                    f"{result.time_s:6.2f} s  {result.instruction}"
                    + (f"  -> {video.path}" if video else ""),
                    soft_wrap=True,
                )
                progress.advance(bar)
    summary = _summary(results)
    print(
        f"{config.task}: {summary['successes']}/{summary['episodes']} succeeded "
        f"({100 * summary['success_rate']:.0f} %), mean {summary['mean_steps']:.1f} steps, "
        f"mean {summary['mean_time_s']:.2f} s per episode"
    )
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        document = {"task": config.task, "robot": args.robot, "clock": clock_name, "summary": summary,
                    "episodes": [r.to_dict() for r in results]}
        out.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def _progress(total: int) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("episodes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=not sys.stdout.isatty(), transient=True,
    )
    return progress, progress.add_task("episodes", total=total)


def _summary(results: list[Any]) -> dict[str, Any]:
    successes = sum(1 for r in results if r.success)
    return {
        "episodes": len(results),
        "successes": successes,
        "success_rate": successes / len(results),
        "mean_steps": statistics.fmean(r.steps for r in results),
        "mean_time_s": statistics.fmean(r.time_s for r in results),
        "clipped": sum(r.clipped for r in results),
        "rejected": sum(r.rejected for r in results),
    }
