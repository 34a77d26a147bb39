"""`agentrt distill`: consistency-distil the nano VLA so early-exit Jacobi decoding needs few passes.

    agentrt distill --data data/nano --trajectories 2000 --steps 400     # -> runs/distill/nano_vla_cd.safetensors
    agentrt distill --teacher runs/train/nano_vla.safetensors --data data/nano --out runs/cd/nano_vla_cd.safetensors
    agentrt distill --data data/reach,data/pick --task-weight pick_place=2 --word-dropout 0.15   # more of the hard task
    agentrt distill --data data/pick --init runs/cd/nano_vla_cd.safetensors --teacher-weight 1 --steps 300
                                  # go on from an earlier student, the teacher's distribution as a third term
    agentrt distill --data /tmp/tiny --teacher /tmp/tiny.safetensors --out /tmp/tiny_cd.safetensors \\
        --trajectories 16 --steps 3
    torchrun --nproc-per-node 2 -m agentrt.cli distill --data data/nano --batch-size 32   # 2 processes (CPU, gloo)

Collects Jacobi trajectories from the AR teacher (random initial guesses), mixes
labels (the teacher's fixed point where it is within --delta bins of the
demonstration, the demonstration elsewhere) and trains the student with the
consistency loss (aimed at the teacher's fixed point, or with --consistency-target
label at the mixed label) plus the AR loss (CEED-VLA / CLLM; docs/policies.md), the
instruction's words dropped to unk as in training (--word-dropout). The
student goes to --out (default runs/distill/nano_vla_cd.safetensors): the
shipped policies/weights/nano_vla_cd.safetensors is replaced only when named.
Under torchrun the processes split the trajectory collection, then each trains
on its share of every global batch (DDP, gloo); --batch-size stays the global
batch and must divide by the number of processes. Rank 0 alone writes.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from agentrt.cli.common import add_batch_size, add_seed

if TYPE_CHECKING:
    from policies.vla.distill import DistillConfig

__all__ = ["add_arguments", "config", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", default="",
                        help="the AR weights to distil (default: the shipped ones)")
    parser.add_argument("--data", default="data/nano", help="dataset folder from `agentrt collect` (default data/nano)")
    parser.add_argument("--tasks", nargs="*", default=[], help="distil on these tasks only (default: all in the dataset)")
    parser.add_argument("--out", default="runs/distill/nano_vla_cd.safetensors",
                        help="the student's weights (default runs/distill/nano_vla_cd.safetensors; the shipped ones only when named)")
    parser.add_argument("--trajectories", type=int, default=2000,
                        help="Jacobi trajectories collected from the teacher (default 2000)")
    parser.add_argument("--steps", type=int, default=400, help="optimiser steps (default 400)")
    add_batch_size(parser, 32, "trajectories per optimiser step, over all processes under torchrun (default 32)")
    parser.add_argument("--lr", type=float, default=3e-4, help="learning rate (default 3e-4)")
    parser.add_argument("--ar-weight", type=float, default=1.0,
                        help="weight of the AR loss beside the consistency loss (default 1.0)")
    parser.add_argument("--delta", type=float, default=6.0, help="mixed labels: mean bin error for the teacher's label")
    parser.add_argument("--word-dropout", type=float, default=None, metavar="P",
                        help="instruction words replaced by unk with probability P, as in training (default 0.15)")
    parser.add_argument("--consistency-target", choices=("fixed_point", "label"), default="fixed_point",
                        help="what the consistency loss aims at: the teacher's fixed point y* (default) or the mixed label")
    parser.add_argument("--task-weight", action="append", default=[], metavar="TASK=W",
                        help="draw TASK's samples W times as often for the trajectories (repeatable; e.g. pick_place=2)")
    parser.add_argument("--teacher-weight", type=float, default=0.0, metavar="W",
                        help="weight of a third term: KL from the teacher's distribution (full instruction) to the "
                             "student's (words dropped) after the label's prefix (default 0: off)")
    parser.add_argument("--init", default="",
                        help="the student's starting weights, e.g. an earlier student (default: the teacher's)")
    parser.add_argument("--warm-guesses", type=float, default=0.0, metavar="P",
                        help="share of trajectories that start from a guess like the policy's first one (the "
                             "demonstration moved on, the last step repeated, xyz jittered) instead of a random one (default 0)")
    parser.add_argument("--warm-jitter", type=float, default=3.0, metavar="BINS",
                        help="std of the warm guesses' noise on xyz tokens, in bins (default 3)")
    add_seed(parser, 0, "seed of the trajectories, initial guesses and batches (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a busy shared machine)")


def config(args: argparse.Namespace) -> DistillConfig:
    """The run's DistillConfig from the parsed command line."""
    from policies.vla.distill import DistillConfig

    extra = {} if args.word_dropout is None else {"word_dropout": args.word_dropout}
    return DistillConfig(teacher=args.teacher, data_dir=args.data, out=args.out, tasks=tuple(args.tasks),
                         trajectories=args.trajectories, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                         ar_weight=args.ar_weight, delta_bins=args.delta, seed=args.seed, threads=args.threads,
                         task_weights=task_weights(args.task_weight), consistency_target=args.consistency_target,
                         teacher_weight=args.teacher_weight, init=args.init, warm_share=args.warm_guesses,
                         warm_jitter_bins=args.warm_jitter, **extra)


def task_weights(pairs: list[str]) -> dict[str, float]:
    """``["pick_place=2", ...]`` -> ``{"pick_place": 2.0}`` (the KEY=VALUE grammar of ``--set``); a malformed
    pair is a one-line ConfigError."""
    from agentrt.configs import parse_set
    from agentrt.errors import ConfigError

    form = "TASK=WEIGHT, e.g. pick_place=2"
    weights = parse_set(pairs, form, flag="--task-weight")
    for task, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"--task-weight: expected {form}, got {task}={value}")
    return {task: float(value) for task, value in weights.items()}


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agentrt.distributed import ranks
    from policies.vla.distill import distill

    cfg = config(args)
    main = ranks().main  # under torchrun, rank 0 alone shows progress and results
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        disable=not (main and sys.stdout.isatty()))
    bars: dict[str, object] = {}

    def on_progress(phase: str, done: int, total: int, loss: float) -> None:
        if phase not in bars:
            bars[phase] = progress.add_task(phase, total=total)
        label = phase if loss != loss else f"{phase} loss {loss:.3f}"
        progress.update(bars[phase], completed=done, description=label)  # type: ignore[arg-type]
        if not sys.stdout.isatty() and (done % 50 == 0 or done == total):
            print(f"{label}: {done}/{total}", flush=True)

    with progress:
        summary = distill(cfg, on_progress=on_progress)
    if not main:
        return 0
    print(f"{summary['trajectories']} trajectories ({summary['kept']} kept, {summary['teacher_passes_mean']} passes "
          f"to the teacher's fixed point, {100 * summary['teacher_label_share']:.0f}% teacher labels) in "
          f"{summary['collect_s']:.0f} s; {summary['steps']} steps in {summary['train_s']:.0f} s, loss {summary['loss']}")
    print(f"wrote {cfg.out}")
    return 0
