"""`agentrt collect`: record scripted-expert demonstrations over seeded scenes (LeRobot-shaped folder).

    agentrt collect --tasks reach --episodes 200 --out data/nano
    agentrt collect --tasks push pick_place --episodes 150 --out data/nano      # appends to the same dataset
    agentrt collect --tasks reach --episodes 5 --size 64 --out /tmp/tiny --noise 0
    agentrt collect --tasks reach push --episodes 50 --format lerobot --out data/lr   # LeRobotDataset v3.0
    agentrt collect --tasks reach --episodes 200 --workers 4 --out data/nano     # 4 processes, the same dataset
    agentrt collect --tasks reach --episodes 2000 --engine ray --address auto --workers 32 --out data/big

Episode i of a task uses seed ``--seed + i``; seeds already in the dataset are
skipped, so an interrupted collection resumes. With --workers N (processes here, or Ray actors with
--engine ray) the episodes are recorded N at a time and written in seed order: the dataset is the one
a single process writes, episode for episode. Formats: an npz folder (``--format npz``, the default;
an image every --image-every steps) or a LeRobotDataset v3.0 (``--format lerobot``: every
frame, one MP4 per camera; `agentrt train --data lerobot:PATH` reads it). docs/policies.md.
"""

from __future__ import annotations

import argparse
import sys

from agentrt.cli.common import add_seed, add_sweep, sweep_config
from policies.lerobot.layout import DATA_FORMATS
from sims.tasks import TASK_NAMES

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", nargs="+", default=["reach"], help=f"{', '.join(TASK_NAMES)} (default reach)")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per task (default 100)")
    add_seed(parser, 0, "seed of the first episode (default 0)")
    parser.add_argument("--size", type=int, default=64, help="scene camera size in pixels, square (default 64)")
    parser.add_argument("--noise", type=float, default=0.003, help="DART noise std on executed steps, metres (default 0.003)")
    parser.add_argument("--image-every", type=int, default=None,
                        help="render a frame (a training sample) every n steps (default 2; lerobot: 1, every frame)")
    parser.add_argument("--wrist", action="store_true", help="also record the wrist camera at the same steps")
    parser.add_argument("--out", default="data/nano", help="dataset folder (default data/nano)")
    parser.add_argument("--format", choices=DATA_FORMATS, default="npz",
                        help="npz (arrays, default) or lerobot (LeRobotDataset v3.0; needs agentrt[lerobot])")
    add_sweep(parser)


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from policies.vla.data import CollectConfig, Episode, collect

    config = CollectConfig(tasks=tuple(args.tasks), episodes=args.episodes, seed=args.seed,
                           image_size=args.size, noise_m=args.noise, wrist=args.wrist, out_dir=args.out, format=args.format,
                           image_every=args.image_every or (1 if args.format == "lerobot" else 2))
    sweep = sweep_config(args)
    total = config.episodes * len(config.tasks)
    counts = {"ok": 0, "failed": 0, "frames": 0}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        disable=not sys.stdout.isatty())

    def on_episode(ep: Episode) -> None:
        counts["ok" if ep.success else "failed"] += 1
        counts["frames"] += len(ep.actions)
        progress.update(bar, advance=1, description=f"{ep.task} seed {ep.seed}")
        if not sys.stdout.isatty() and (counts["ok"] + counts["failed"]) % 25 == 0:
            print(f"{counts['ok'] + counts['failed']}/{total} episodes, {counts['frames']} frames", flush=True)

    with progress:
        bar = progress.add_task("collect", total=total)
        info = collect(config, on_episode, sweep)
    print(f"{counts['ok']} episodes kept, {counts['failed']} failed (dropped), {counts['frames']} new frames")
    print(f"dataset {config.out_dir}: {info['total_episodes']} episodes, {info['total_frames']} frames, "
          f"tasks {info['episodes_per_task']}")
    return 0
