"""`agentrt train`: train the nano VLA on a demonstration dataset (resumable, seeded).

    agentrt train --data data/nano --steps 3000 --out runs/train          # weights: runs/train/nano_vla.safetensors
    agentrt train --data data/nano --steps 4000 --out runs/train          # same --out: resumes from its checkpoint
    agentrt train --data data/nano --steps 1500 --eval-every 500 --eval-episodes 5
    agentrt train --data /tmp/tiny --steps 5 --set width=32 --set depth=1 --weights /tmp/tiny.safetensors
    agentrt train --data lerobot:data/lr --steps 3000                     # a LeRobotDataset v3.0
    agentrt train --data data/pick --init policies/weights/nano_vla.safetensors --set keypoint_height=true \
        --steps 2500 --lr 5e-4 --out runs/train_h                         # fine-tune, with keypoint heights
    agentrt train --data lerobot:~/so100_ee --camera laptop --map-state observation.ee --map-action action.ee
    torchrun --nproc-per-node 2 -m agentrt.cli train --data data/nano --batch-size 64   # 2 processes, DDP

Progress shows the step, the running loss and samples/s. With --eval-every N a
lockstep evaluation (AR decoding, held-out seeds) runs every N steps. The
weights (safetensors, config and action statistics in the metadata) and a
JSON beside them are written at the end, to OUT/nano_vla.safetensors unless
--weights names another file: the shipped policies/weights/ are replaced only
when named there; docs/policies.md.

Under torchrun (one machine or several: --nnodes, --rdzv-endpoint) every process
trains on its share of each global batch with DistributedDataParallel (gloo on
CPU, NCCL on GPUs: one process per GPU); --batch-size stays the global batch and
must divide by the number of processes. Rank 0 alone writes and reports.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from agentrt.cli.common import add_batch_size, add_device, add_seed

if TYPE_CHECKING:
    from policies.vla.train import TrainConfig

__all__ = ["add_arguments", "config", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="data/nano",
                        help="dataset folder from `agentrt collect` (default data/nano), or lerobot:PATH (LeRobotDataset "
                             "v3.0); several separated by commas")
    parser.add_argument("--camera", default="", help="lerobot: the camera (scene, laptop, or observation.images.KEY)")
    parser.add_argument("--map-state", default="", help="lerobot: the 4-value state feature (default observation.state)")
    parser.add_argument("--map-action", default="", help="lerobot: the 4-value action feature (default action)")
    parser.add_argument("--tasks", nargs="*", default=[], help="train on these tasks only (default: all in the dataset)")
    parser.add_argument("--steps", type=int, default=3000, help="optimiser steps in total (default 3000)")
    add_batch_size(parser, 64, "demonstration samples per optimiser step, over all processes under torchrun (default 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    add_seed(parser, 0, "seed of initialisation and batches (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a busy shared machine)")
    add_device(parser, dtype=False)  # training stays in float32
    parser.add_argument("--out", default="runs/train", help="checkpoint folder; an existing checkpoint there is resumed")
    parser.add_argument("--weights", default="",
                        help="where the final weights go (default OUT/nano_vla.safetensors; the shipped ones only when named)")
    parser.add_argument("--eval-every", type=int, default=0, help="lockstep evaluation every N steps (default off)")
    parser.add_argument("--eval-episodes", type=int, default=5, help="episodes per task in each evaluation (default 5)")
    parser.add_argument("--init", default="", metavar="WEIGHTS",
                        help="start from these weights (fine-tuning); --set may add inputs or parts, e.g. "
                             "--set keypoint_height=true, which start with no effect")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="model size override, e.g. --set depth=4 --set chunk_steps=8")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The model-size ``--set KEY=VALUE`` pairs (the one grammar: agentrt.configs.parse_set)."""
    from agentrt.configs import parse_set

    return parse_set(args.set)


def config(args: argparse.Namespace) -> TrainConfig:
    """The run's TrainConfig from the parsed command line."""
    from policies.lerobot.nano import LeRobotKeys
    from policies.vla.train import TrainConfig

    return TrainConfig(keys=LeRobotKeys(args.camera, args.map_state, args.map_action), data_dir=args.data, out_dir=args.out, weights=args.weights, tasks=tuple(args.tasks),
                       init=args.init,
                       steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                       eval_every=args.eval_every, eval_episodes=args.eval_episodes, model=overrides(args),
                       threads=args.threads, device=args.device)


def run(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from agentrt.distributed import ranks
    from policies.vla.evaluate import quick_eval
    from policies.vla.train import train

    cfg = config(args)
    main = ranks().main  # under torchrun, rank 0 alone shows progress and results
    progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), disable=not (main and sys.stdout.isatty()))
    started = [time.monotonic(), 0]

    def on_step(step: int, loss: float) -> None:
        if not started[1]:
            started[:] = [time.monotonic(), step]
        rate = (step - started[1]) * cfg.batch_size / max(time.monotonic() - started[0], 1e-6)
        progress.update(bar, completed=step, description=f"loss {loss:.3f}  {rate:.0f} samples/s")
        if not sys.stdout.isatty() and step % 100 == 0:
            print(f"step {step}/{cfg.steps} loss {loss:.4f} {rate:.0f} samples/s", flush=True)

    def evaluate(model: Any, step: int) -> dict[str, float]:
        return quick_eval(model, episodes=cfg.eval_episodes, tasks=cfg.tasks or None)

    with progress:
        bar = progress.add_task("train", total=cfg.steps)
        summary = train(cfg, on_step=on_step, evaluate=evaluate if cfg.eval_every else None)
    if not main:
        return 0
    print(f"trained {summary['steps']} steps on {summary['samples']} samples ({summary['episodes']} episodes) "
          f"in {summary['train_s']:.0f} s; loss {summary['loss']:.4f}; {summary['parameters'] / 1e6:.2f} M parameters")
    print(f"wrote {cfg.weights_path}")
    return 0
