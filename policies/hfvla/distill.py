"""Consistency distillation of a Hugging Face VLA for early-exit Jacobi decoding (CLLM / CEED-VLA, REFERENCES §5).

The loss is ``policies.vla.distill``'s: for a Jacobi state y (a guess whose
first k tokens are already exact), the student's prediction at every row is
pulled towards its own prediction from the fixed point (KL, the fixed point's
side detached), plus cross-entropy on the labels (AR)::

    L = mean_i KL( stopgrad Q(. | x, y*_<i) || Q(. | x, y_<i) ) + ar_weight * CE( Q(label_i | x, label_<i) )

One difference, for a 2-core machine: the states are not collected by running
the teacher's Jacobi passes (N full passes per sample), they are made from
the demonstration's chunk, which the AR teacher was trained to reproduce: the
first k tokens kept, the rest replaced by a random action id or moved a few
bins (what a Jacobi iterate looks like near its fixed point), k uniform in
[1, N). y* is the demonstration chunk. The student starts as the teacher.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from agentrt.errors import ConfigError
from policies.hfvla.build import save_vla
from policies.hfvla.model import load_vla
from policies.hfvla.train import make_batches
from policies.vla.distill import token_kl
from policies.vla.train import load_samples, model_config, seed_all

__all__ = ["HFDistillConfig", "jacobi_states", "distill_vla"]


@dataclass
class HFDistillConfig:
    teacher: str = "runs/hfvla"
    data_dir: str = "data/hfvla_reach"
    out: str = "runs/hfvla_cd"
    steps: int = 400
    minutes: float = 0.0  # > 0: stop (and save) after this much training time
    batch_size: int = 32
    lr: float = 3e-4
    ar_weight: float = 1.0
    move_bins: int = 8  # a replaced token moves at most this many bins (else: a random action id)
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or self.minutes < 0 or self.move_bins < 1:
            raise ConfigError(f"HFDistillConfig: expected steps, batch_size, move_bins >= 1, lr > 0, minutes >= 0, "
                              f"got {self.steps}, {self.batch_size}, {self.move_bins}, {self.lr}, {self.minutes}")


def jacobi_states(labels: torch.Tensor, action_ids: tuple[int, int], move_bins: int,
                  gen: torch.Generator) -> torch.Tensor:
    """Labels [B, N] -> Jacobi-like states [B, N]: an exact prefix of k tokens (1 <= k < N), then half the
    tokens a random action id and half the label moved by up to ``move_bins`` bins."""
    lo, hi = action_ids
    B, N = labels.shape
    k = torch.randint(1, N, (B, 1), generator=gen)
    after = torch.arange(N)[None] >= k
    moved = (labels + torch.randint(-move_bins, move_bins + 1, (B, N), generator=gen)).clamp(lo, hi - 1)
    random = torch.randint(lo, hi, (B, N), generator=gen)
    noise = torch.where(torch.rand(B, N, generator=gen) < 0.5, random, moved)
    return torch.where(after, noise, labels)


def distill_vla(cfg: HFDistillConfig, on_step: Any = None) -> dict[str, Any]:
    """Load the teacher, train the student with the consistency + AR loss, save it to ``cfg.out``."""
    torch.set_num_threads(cfg.threads)
    gen = seed_all(cfg.seed)
    student = load_vla(cfg.teacher)
    spec = student.config
    nano = model_config(cfg.data_dir, (), {"action_q01": spec.action_q01, "action_q99": spec.action_q99})
    data = make_batches(student, load_samples(cfg.data_dir, nano))
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    student.train()
    lo = spec.action_start
    started = time.monotonic()
    step, avg = 0, {"loss": math.nan, "consistency": math.nan, "ar": math.nan}
    while step < cfg.steps and not (cfg.minutes and time.monotonic() - started > 60 * cfg.minutes):
        idx = torch.randint(len(data), (cfg.batch_size,), generator=gen)
        labels = data.actions[idx]
        y = jacobi_states(labels, spec.action_ids, cfg.move_bins, gen)
        B = len(idx)
        pixels = student.pixels(data.samples.images[idx])
        logits, _ = student.teacher_forced(data.prompts[idx].repeat(2, 1), data.mask[idx].repeat(2, 1),
                                           pixels.repeat(2, 1, 1, 1), torch.cat([y, labels]))
        lg_y, lg_star = logits[:B], logits[B:]
        consistency = token_kl(F.log_softmax(lg_star.detach(), -1), lg_y)
        ar = F.cross_entropy(lg_star.reshape(-1, spec.n_bins), (labels - lo).reshape(-1))
        loss = consistency + cfg.ar_weight * ar
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / 20)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        step += 1
        for key, value in (("loss", loss), ("consistency", consistency), ("ar", ar)):
            avg[key] = value.item() if math.isnan(avg[key]) else 0.95 * avg[key] + 0.05 * value.item()
        if on_step is not None:
            on_step(step, avg)
    student.eval()
    save_vla(student, cfg.out)
    summary = {"steps": step, "train_s": round(time.monotonic() - started, 1), "teacher": cfg.teacher,
               **{k: round(v, 4) for k, v in avg.items()}, "config": asdict(cfg)}
    (Path(cfg.out) / "distillation.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
