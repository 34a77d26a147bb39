"""`agentrt collect-qa`: render seeded sim scenes for the nano video-QA model (two frames each).

    agentrt collect-qa --scenes 8000 --out data/qa
    agentrt collect-qa --scenes 5000 --seed 5000 --out data/qa_b     # a second collector; train-qa --data data/qa,data/qa_b
    agentrt collect-qa --scenes 200 --out /tmp/qa-small --size 96
    agentrt collect-qa --scenes 500 --split val --seed 1000000 --out data/qa     # unseen layouts

Scene i uses seed ``--seed + i`` (training: 0 ..; evaluation scenes start at
1000000). Scenes are written in shards of 250; an interrupted run resumes after
the last complete shard. --p-task (0.3) of the scenes are moments of task
episodes (reach, push, pick-and-place: the scripted expert run with physics,
~0.5 s a scene). Questions are drawn from the scene records at training time,
not stored. Layout: policies/qa/data/, docs/nano_qa.md.
"""

from __future__ import annotations

import argparse
import sys
import time

from agentrt.cli.common import add_seed

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenes", type=int, default=8000, help="scenes in the split (default 8000)")
    add_seed(parser, 0, "seed of the first scene (default 0)")
    parser.add_argument("--split", default="train", help="split name, a folder under --out (default train)")
    parser.add_argument("--size", type=int, default=96, help="scene camera size in pixels, square (default 96)")
    parser.add_argument("--out", default="data/qa", help="dataset folder (default data/qa)")
    parser.add_argument("--p-task", type=float, default=0.3,
                        help="share of scenes from task episodes (reach, push, pick-and-place with its tray) at a moment "
                             "of the scripted expert's run (default 0.3; 0: only placed scenes)")


def run(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from agentrt.errors import ConfigError
    from policies.qa.data import Scene, SceneConfig, write_dataset

    if args.scenes < 1:
        raise ConfigError(f"--scenes: expected >= 1, got {args.scenes}")
    config = SceneConfig(image_size=args.size, p_task=args.p_task)
    tty = sys.stdout.isatty()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), disable=not tty)
    counts = {"scenes": 0, "moved": 0, "holding": 0, "task": 0}
    start = time.perf_counter()

    def on_scene(scene: Scene) -> None:
        counts["scenes"] += 1
        counts["moved"] += scene.moved is not None
        counts["holding"] += scene.held is not None
        counts["task"] += scene.arm.startswith("task:")
        progress.update(bar, advance=1, description=f"{args.split} seed {scene.seed}")
        if not tty and counts["scenes"] % 250 == 0:
            rate = counts["scenes"] / (time.perf_counter() - start)
            print(f"{counts['scenes']} new scenes ({rate:.1f}/s), {counts['moved']} moved, {counts['holding']} holding, "
                  f"{counts['task']} from task episodes",
                  flush=True)

    with progress:
        bar = progress.add_task(args.split, total=args.scenes)
        total = write_dataset(args.out, args.split, args.scenes, args.seed, config, on_scene=on_scene)
    elapsed = time.perf_counter() - start
    print(f"{counts['scenes']} new scenes in {elapsed:.0f} s; {args.out}/{args.split}: {total} scenes")
    return 0
