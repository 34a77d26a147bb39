"""Options several subcommands share, spelled one way everywhere.

    add_no_status(parser)     --no-status (also --quiet): no live status line
    add_seed(parser, ...)     --seed N, an integer >= 0
    add_batch_size(parser)    --batch-size N (also --batch)
    add_device(parser)        --device auto|cpu|cuda[:N], --dtype float32|bfloat16 (agentrt.engine.device parses them)
    add_sweep(parser)         --engine local|ray, --address, --workers N (policies.sweep: episodes over workers)
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_no_status", "add_seed", "add_batch_size", "add_device", "add_engine", "add_sweep", "sweep_config", "non_negative_int"]


def add_no_status(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-status", action="store_true", help="no live status line")
    parser.add_argument("--quiet", dest="no_status", action="store_true", help=argparse.SUPPRESS)  # older spelling


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a seed, a count); argparse prints one line otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def add_seed(parser: argparse.ArgumentParser, default: int | None, help_text: str) -> None:
    parser.add_argument("--seed", type=non_negative_int, default=default, metavar="N", help=help_text)


def add_batch_size(parser: argparse.ArgumentParser, default: int, help_text: str) -> None:
    parser.add_argument("--batch-size", type=int, default=default, metavar="N", help=help_text)
    parser.add_argument("--batch", dest="batch_size", type=int, help=argparse.SUPPRESS)  # older spelling


def add_device(parser: argparse.ArgumentParser, default: str = "auto", *, dtype: bool = True) -> None:
    """--device and --dtype, kept as text: ``agentrt.engine.device`` resolves them when the command runs, so a
    missing GPU is one line from the command, and `agentrt --help` does not import torch."""
    parser.add_argument("--device", default=default, metavar="DEVICE",
                        help=f"where the model runs: auto (a GPU when there is one), cpu, cuda or cuda:N "
                             f"(default {default})")
    if dtype:
        parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                            help="the model's weights and activations (default float32; bfloat16 is for GPUs)")


def add_engine(parser: argparse.ArgumentParser) -> None:
    """Where the work runs: processes on this machine or Ray actors (`policies.sweep`, `policies.vla.replicas`)."""
    from policies.sweep import ENGINES

    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: processes on this machine (default); ray: Ray actors (needs agentrt[ray])")
    parser.add_argument("--address", default="", metavar="auto|ray://HOST:PORT",
                        help="ray: the cluster to join (default: a private Ray on this machine for this run)")


def add_sweep(parser: argparse.ArgumentParser) -> None:
    """Where the episodes run (`policies.sweep`): this process, a pool of processes, or Ray actors."""
    add_engine(parser)
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="episodes run N at a time, each worker taking the next seed when done (default 1: "
                             "in this process)")


def sweep_config(args: argparse.Namespace) -> Any:
    """The ``policies.sweep.SweepConfig`` of ``add_sweep``'s options (checked there: one line when wrong)."""
    from policies.sweep import SweepConfig

    return SweepConfig(engine=args.engine, workers=args.workers, address=args.address)
