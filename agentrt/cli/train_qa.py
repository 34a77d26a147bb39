"""`agentrt train-qa`: train the nano video-QA model on scenes from `agentrt collect-qa` (seeded, resumable).

    agentrt train-qa --data data/qa --out runs/qa/train --threads 2       # 4500 steps, ~25 min on 2 quiet cores
    agentrt train-qa --data data/qa --steps 100 --out /tmp/qa-pilot --no-resume      # a short pilot
    nice -n 5 env OMP_NUM_THREADS=1 agentrt train-qa --threads 1 --max-minutes 35    # on a shared machine
    torchrun --nproc-per-node 2 -m agentrt.cli train-qa --data data/qa --batch-size 16  # 2 processes (CPU, gloo)

A run resumes from OUT/checkpoint.pt when it exists (--no-resume starts over);
--max-minutes stops early with a checkpoint, and the same command goes on.
OUT/nano_qa.safetensors holds the latest weights; copy them to
policies/weights/nano_qa.safetensors to ship them. Under torchrun every process
trains on its share of each global batch (DDP, gloo); --batch-size stays the
global batch and must divide by the number of processes; rank 0 alone reports
and writes. Details: docs/nano_qa.md.
"""

from __future__ import annotations

import argparse

from agentrt.cli.common import add_batch_size, add_seed

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="data/qa", help="dataset folder(s) from collect-qa, comma-separated (default data/qa)")
    parser.add_argument("--out", default="runs/qa/train", help="run folder: checkpoint and weights (default runs/qa/train)")
    parser.add_argument("--steps", type=int, default=4500, help="optimiser steps (default 4500)")
    add_batch_size(parser, 16, "scenes (streams) per step, over all processes under torchrun (default 16)")
    parser.add_argument("--questions", type=int, default=7, help="questions per scene per step (default 7)")
    parser.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate (default 1.5e-3)")
    add_seed(parser, 0, "seed of initialisation and batches (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--max-minutes", type=float, default=0.0, help="stop (resumable) after this long (default: no limit)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if OUT/checkpoint.pt exists")
    parser.add_argument("--init", default="", metavar="WEIGHTS",
                        help="start from these nano_qa weights (parts they lack start at zero); ignored when resuming")
    parser.add_argument("--relations", type=int, default=2, help="extra left/right questions per scene (default 2)")


def run(args: argparse.Namespace) -> int:
    from policies.qa.train import TrainQAConfig, train

    config = TrainQAConfig(data=args.data, out=args.out, steps=args.steps, batch=args.batch_size, questions=args.questions,
                           lr=args.lr, seed=args.seed, threads=args.threads, max_minutes=args.max_minutes,
                           init=args.init, relations=args.relations)
    train(config, resume=not args.no_resume, report=lambda line: print(line, flush=True))
    return 0
