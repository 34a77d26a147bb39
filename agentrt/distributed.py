"""Training on several processes or machines: torchrun's environment, one process group, DDP around a loss.

A trainer written for one process runs under ``torchrun --nproc-per-node N`` (and ``--nnodes M
--rdzv-endpoint HOST:PORT`` across machines) with a few calls from here:

    with distributed.joined(cfg.device) as (ranks, device):   # gloo on CPU, NCCL on a GPU
        per_rank = ranks.check_batch(cfg.batch_size)          # the global batch, divided among the ranks
        step = distributed.data_parallel(model, loss_fn, ranks, device)
        ...
        idx = draw_global_batch(gen)[ranks.shard(cfg.batch_size)]  # every rank draws the same global batch
        loss = step(inputs[idx])                                   # DDP averages the gradients in backward
        shown, = distributed.mean(ranks, loss)                    # the global batch's loss, on every rank

Every rank seeds the same generators and draws the same *global* batch, then keeps its own
slice: the ranks together see exactly the batch one process would, so a run's loss curve and
weights match one process's (within float rounding, where each loss term is a mean over
equal-sized slices; ``tests/policies/test_distributed_training.py`` measures it). A term that is
a mean over a data-dependent count (the samples that have a goal) stays exact when each rank
divides its sum by the global batch's count / size (``policies.vla.train.keypoint_loss``). Only rank 0
(``ranks.main``) writes files, logs and progress; the others log warnings only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from agentrt.engine.device import resolve_device
from agentrt.errors import ConfigError

__all__ = ["Ranks", "ranks", "joined", "data_parallel", "mean", "broadcast", "gather"]

# A rank waits this long for the others at a collective: rank 0 alone runs evaluations and writes
# checkpoints while the others wait in their next backward.
TIMEOUT = timedelta(minutes=60)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the rank on this machine: which GPU it drives

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes weights, checkpoints, reports and progress."""
        return self.rank == 0

    def check_batch(self, batch: int, flag: str = "--batch-size") -> int:
        """The global batch -> this rank's share, or a one-line ConfigError when it does not divide."""
        if batch % self.size:
            raise ConfigError(f"{flag} {batch} is the global batch and must divide among the {self.size} training "
                              f"processes (WORLD_SIZE); use a multiple of {self.size}")
        return batch // self.size

    def shard(self, batch: int) -> slice:
        """This rank's rows of a global batch of ``batch`` rows (disjoint, equal, in rank order)."""
        per = self.check_batch(batch)
        return slice(self.rank * per, (self.rank + 1) * per)


def ranks() -> Ranks:
    """This process's place from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); one process without it."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers; start training with torchrun") from None
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"RANK {rank} is not within WORLD_SIZE {size}; start training with torchrun")
    return Ranks(rank, size, local)


def device_of(spec: str, place: Ranks) -> torch.device:
    """``--device`` for this rank: ``auto`` / ``cuda`` mean the rank's own GPU (cuda:LOCAL_RANK) under torchrun."""
    device = resolve_device(spec)
    if device.type == "cuda" and place.size > 1 and spec.strip().lower() in ("auto", "cuda"):
        if place.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {place.local_rank} but {torch.cuda.device_count()} GPU(s) here; start "
                              "at most one process per GPU (torchrun --nproc-per-node)")
        device = torch.device("cuda", place.local_rank)
    return device


@contextmanager
def joined(device: str = "auto") -> Iterator[tuple[Ranks, torch.device]]:
    """Join the process group torchrun describes for the duration (NCCL when this rank's device is a GPU,
    gloo on CPU) -> (this rank's Ranks, its device). A lone process, or one whose group is already up
    (a caller that joined first), joins nothing and leaves nothing behind."""
    place = ranks()
    dev = device_of(device, place)
    if place.size == 1 or torch.distributed.is_initialized():
        yield place, dev
        return
    if not torch.distributed.is_available():
        raise ConfigError("this torch build has no torch.distributed; run one process (without torchrun)")
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise ConfigError(f"WORLD_SIZE is {place.size} but MASTER_ADDR / MASTER_PORT are not set; start training with "
                          "torchrun (it sets them)")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=place.rank,
                                         world_size=place.size, timeout=TIMEOUT)
    root = logging.getLogger()
    level = root.level
    if not place.main:  # the others stay quiet: rank 0 speaks for the run
        root.setLevel(max(level, logging.WARNING))
    try:
        yield place, dev
        # leave together: rank 0 still writes the weights after the last collective, and a rank that tore its
        # gloo connections down meanwhile was seen to abort ("terminate called without an active exception")
        torch.distributed.barrier()
    finally:
        root.setLevel(level)
        torch.distributed.destroy_process_group()


class _Loss(torch.nn.Module):
    """The trainer's loss function as a module's forward: DDP averages the gradients of whatever runs
    inside its forward, so a loss that calls a model's other methods (prompt, encode) is covered too."""

    def __init__(self, model: torch.nn.Module, loss_fn: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.loss_fn(self.model, *args, **kwargs)


def data_parallel(model: torch.nn.Module, loss_fn: Callable[..., Any], place: Ranks, device: torch.device, *,
                  unused_parameters: bool = False) -> Callable[..., Any]:
    """``loss_fn(model, *inputs)`` as a callable whose backward averages the gradients over the ranks
    (DistributedDataParallel; rank 0's weights are copied to the others first). One process: the plain call.
    ``unused_parameters``: the loss leaves some parameters out on some steps (a head that only some
    batches train); DDP then looks for them every step."""
    step = _Loss(model, loss_fn)
    if place.size == 1:
        return step
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=unused_parameters)


def mean(place: Ranks, *values: torch.Tensor | float) -> list[float]:
    """Each value's mean over the ranks, in one all-reduce (the global batch's loss when each rank
    holds its slice's). One process: the values as floats."""
    floats = [float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for v in values]
    if place.size == 1:
        return floats
    t = torch.tensor(floats, dtype=torch.float64)
    if torch.distributed.get_backend() == "nccl":
        t = t.cuda()
    torch.distributed.all_reduce(t)
    return [float(v) / place.size for v in t.tolist()]


def broadcast(obj: Any, place: Ranks) -> Any:
    """Rank 0's ``obj`` on every rank (a checkpoint only rank 0's disk holds)."""
    if place.size == 1:
        return obj
    box = [obj if place.main else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any, place: Ranks) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (small tallies: accuracy counts)."""
    if place.size == 1:
        return [obj]
    out: list[Any] = [None] * place.size
    torch.distributed.all_gather_object(out, obj)
    return out
