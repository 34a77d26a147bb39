"""Behaviour cloning of the nano VLA on expert demonstrations: resumable, seeded.

Every step of every episode is a sample: the scene image and state at step t,
the instruction, and the chunk of actions t .. t+K-1 as K*D tokens (past the
episode's end: zero motion, last gripper command). Loss: cross-entropy on the
action tokens (teacher forcing). Instruction words are dropped to ``unk`` with
``word_dropout`` so unseen rewordings degrade gracefully.

Checkpoints (model, optimiser, step, RNG states) go to ``out_dir/ckpt.pt``
every ``ckpt_every`` steps; a run with the same ``out_dir`` resumes from there.

Under torchrun (``agentrt.distributed``) every rank draws the same global batch
and word dropout, trains on its slice, and DDP averages the gradients; the
keypoint loss is normalised by the global batch's count of known places, so the
ranks' losses average to one process's. Rank 0 alone reads the checkpoint (and
sends it to the others), writes files and reports.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agentrt import distributed
from agentrt.errors import ConfigError
from policies.lerobot.nano import LeRobotKeys
from policies.vla.data import Episode, chunk_padding, data_robot, load_episodes, load_info
from policies.vla.model import (
    UNK,
    ActionTokenizer,
    Keypoints,
    NanoVLA,
    NanoVLAConfig,
    TextTokenizer,
    load_model,
    pixels,
    save_model,
    split_words,
)
from sims.camera import project_scene

__all__ = ["TrainConfig", "Samples", "load_samples", "grow_from", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data_dir: str = "data/nano"
    out_dir: str = "runs/train"
    weights: str = ""  # the final weights; empty: out_dir/nano_vla.safetensors (the shipped ones only when named)
    tasks: tuple[str, ...] = ()  # empty: every task in the dataset
    init: str = ""  # start from these weights (their config, ``model`` overrides on top; ``grow_from``)
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    word_dropout: float = 0.15
    keypoint_weight: float = 10.0  # auxiliary: keypoint position error (with a heatmap loss on the target's and goal's places)
    seed: int = 0
    ckpt_every: int = 200
    eval_every: int = 0  # 0: no lockstep evaluation along the way
    eval_episodes: int = 5
    threads: int = 2
    device: str = "auto"  # auto (a GPU when there is one) | cpu | cuda | cuda:N (agentrt.engine.device)
    model: dict[str, Any] = field(default_factory=dict)  # NanoVLAConfig overrides
    keys: LeRobotKeys = field(default_factory=LeRobotKeys)  # the features of a ``lerobot:PATH`` dataset

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"TrainConfig: expected steps >= 1, batch_size >= 1, lr > 0, got {self.steps}, {self.batch_size}, {self.lr}")
        if not 0 <= self.word_dropout < 1:
            raise ConfigError(f"TrainConfig.word_dropout: expected [0, 1), got {self.word_dropout}")

    @property
    def weights_path(self) -> Path:
        return Path(self.weights) if self.weights else Path(self.out_dir) / "nano_vla.safetensors"


@dataclass
class Samples:
    """All training samples in memory: images uint8 [N, H, W, 3], states [N, 4], text ids [N, L], action ids [N, K*D]."""

    images: torch.Tensor
    states: torch.Tensor
    text: torch.Tensor
    actions: torch.Tensor
    instructions: list[str]
    tasks: list[str]  # the task of each sample
    episode: torch.Tensor  # [N] episode of each sample
    targets: torch.Tensor  # [N, 3] the target's position (privileged, for the auxiliary loss)
    goals: torch.Tensor  # [N, 3] where it must go (privileged; zeros: the task has no such place)
    raw_actions: np.ndarray  # [N, K, D] float32, the ground-truth chunks

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def places(self, idx: torch.Tensor) -> torch.Tensor:
        """[B, 2, 3]: the target's and the goal's world positions (keypoints 0 and 1)."""
        return torch.stack([self.targets[idx], self.goals[idx]], dim=1)


def model_config(data_dir: str, tasks: tuple[str, ...], overrides: dict[str, Any],
                 keys: LeRobotKeys | None = None) -> NanoVLAConfig:
    """Vocabulary and action statistics from the dataset, sizes from ``overrides``."""
    info = load_info(data_dir.split(",")[0], keys)
    words = task_vocabulary()
    acts = []
    for ep in _episodes(data_dir, images=False, tasks=tasks, keys=keys):
        words.update(split_words(ep.instruction))
        acts.append(ep.actions)
    if not acts:
        raise ConfigError(f"{data_dir}: no episodes for tasks {list(tasks)}")
    a = np.concatenate(acts)[:, :3]
    q01, q99 = np.quantile(a, 0.01, axis=0), np.quantile(a, 0.99, axis=0)


    cfg: dict[str, Any] = {
        "image_size": int(info["image_size"]),  # type: ignore[call-overload]
        "words": sorted(words),
        "action_q01": q01.tolist(),
        "action_q99": np.maximum(q99, q01 + 1e-4).tolist(),
    }
    cfg.update(overrides)
    return NanoVLAConfig(**cfg)


def task_vocabulary() -> set[str]:
    """Every word of the sims' instruction templates, so that one vocabulary serves any mix of tasks
    (a checkpoint trained on some tasks can go on training on all of them)."""
    from sims.tasks.base import COLOURS, SHAPES
    from sims.tasks.push import DIRECTIONS

    words = {"touch", "push", "put", "the", "to", "in", "tray", *COLOURS, *SHAPES}
    for direction in DIRECTIONS:
        words.update(split_words(direction))
    return words


def load_samples(data_dir: str, config: NanoVLAConfig, tasks: tuple[str, ...] = (),
                 keys: LeRobotKeys | None = None) -> Samples:
    text_tok, act_tok = TextTokenizer(config), ActionTokenizer(config)
    K = config.chunk_steps
    images, states, text, actions, raw, instructions, episode, targets, goals = [], [], [], [], [], [], [], [], []
    sample_tasks: list[str] = []
    for e, ep in enumerate(_episodes(data_dir, images=True, tasks=tasks, keys=keys, image_size=config.image_size)):
        steps = ep.image_steps
        T = len(steps)
        padded = np.concatenate([ep.actions, chunk_padding(ep, K)])
        chunks = np.stack([padded[t : t + K] for t in steps])  # [T, K, D]
        images.append(_with_wrist(ep, data_dir) if config.wrist else ep.images)
        states.append(ep.states[steps])
        targets.append(ep.targets[steps])
        goals.append(ep.goals[steps] if len(ep.goals) else np.zeros((T, 3), np.float32))
        raw.append(chunks)
        actions.append(np.stack([act_tok.encode(c) for c in chunks]))
        text.append(np.tile(text_tok.encode(ep.instruction), (T, 1)))
        instructions += [ep.instruction] * T
        sample_tasks += [ep.task] * T
        episode.append(np.full(T, e))
    return Samples(
        targets=torch.from_numpy(np.concatenate(targets)),
        goals=torch.from_numpy(np.concatenate(goals)),
        images=torch.from_numpy(np.concatenate(images)),
        states=torch.from_numpy(np.concatenate(states)),
        text=torch.from_numpy(np.concatenate(text)),
        actions=torch.from_numpy(np.concatenate(actions)),
        instructions=instructions,
        tasks=sample_tasks,
        episode=torch.from_numpy(np.concatenate(episode)),
        raw_actions=np.concatenate(raw),
    )


def _with_wrist(ep: Episode, data_dir: str) -> np.ndarray:
    """The episode's images for a wrist model: (T, H, W, 6), scene then wrist channels."""
    if ep.wrist_images.shape[:1] != ep.images.shape[:1]:
        raise ConfigError(f"{data_dir}: episode {ep.task} seed {ep.seed} has no wrist images, and the model takes "
                          "the wrist camera (wrist=true); collect with `agentrt collect --wrist`")
    return np.concatenate([ep.images, ep.wrist_images], axis=-1)


def _episodes(data_dir: str, *, images: bool, tasks: tuple[str, ...], keys: LeRobotKeys | None = None,
              image_size: int = 0) -> Iterator[Episode]:
    """Episodes of one dataset folder, or of several separated by commas (``lerobot:PATH`` among them)."""
    for root in data_dir.split(","):
        yield from load_episodes(root, images=images, tasks=tasks or None, keys=keys, image_size=image_size)


def drop_words(text: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Replace instruction words (not specials) by ``unk`` with probability p."""
    if p <= 0:
        return text
    words = text >= 4
    drop = (torch.rand(text.shape, generator=generator) < p) & words
    return torch.where(drop, torch.full_like(text, UNK), text)


def grow_from(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy ``state`` into ``model``, whose config may add inputs or parts: a tensor of the same shape is
    copied; one grown along its last dimension (a layer with new inputs) gets the old values in front and
    zeros after, so the new inputs start with no effect; a part absent from ``state`` keeps its fresh
    initialisation. -> the names grown or new. Any other mismatch is a ConfigError."""
    grown = []
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            old = state.get(name)
            if old is None:
                grown.append(name)
            elif old.shape == tensor.shape:
                tensor.copy_(old)
            elif old.shape[:-1] == tensor.shape[:-1] and old.shape[-1] < tensor.shape[-1]:
                tensor.zero_()
                tensor[..., : old.shape[-1]] = old
                grown.append(name)
            else:
                raise ConfigError(f"--init: {name} is {tuple(old.shape)} in the weights but {tuple(tensor.shape)} in this "
                                  "model; only new inputs and new parts can be added (leave the sizes as they were)")
    return grown


def known_places(places: torch.Tensor, n: int) -> torch.Tensor:
    """[B, n] bool: the samples' places that exist (all zeros: the task has none)."""
    return places[:, :n].abs().sum(-1) > 0


def keypoint_loss(model: NanoVLA, keypoints: Keypoints, places: torch.Tensor,
                  count: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (heatmap cross-entropy, table-position mean squared error, with the height where the model predicts it), keypoint k against place k.

    ``places`` [B, n_kp, 3]: world positions (keypoint 0 the target, 1 the goal); all zeros where a
    sample has none. ``count``: what the sums are divided by (default the known places here; a rank
    of a distributed run passes the global batch's count / ranks, so that the ranks' mean is the
    global batch's loss). The heatmap learns against a Gaussian around the place's projection into the
    scene camera (sigma one cell): a dense, well-conditioned signal, where the position error alone
    trains the soft-argmax slowly. The position error then fits image -> table.
    """
    B, n, cells = keypoints.logits.shape
    side = int(round(cells**0.5))
    known = known_places(places, n).to(keypoints.xy.dtype)  # [B, n]
    uv = torch.as_tensor(project_scene(places[:, :n].cpu().numpy()), dtype=keypoints.xy.dtype, device=keypoints.xy.device)
    centres = torch.linspace(-1, 1, side, device=uv.device, dtype=uv.dtype)
    sigma = 2.0 / side
    gx = torch.exp(-0.5 * ((centres[None, None, :] - uv[..., :1]) / sigma) ** 2)  # [B, n, side]
    gy = torch.exp(-0.5 * ((centres[None, None, :] - uv[..., 1:]) / sigma) ** 2)
    target = (gy[..., :, None] * gx[..., None, :]).flatten(2)
    target = target / target.sum(-1, keepdim=True).clamp(min=1e-12)
    ce = -(target * keypoints.logits.log_softmax(-1)).sum(-1)  # [B, n]
    predicted = keypoints.xy if keypoints.z is None else torch.cat([keypoints.xy, keypoints.z], dim=-1)
    err = (predicted - model.normalise_position(places[:, :n, : predicted.shape[-1]])).pow(2).mean(-1)
    count = known.sum().clamp(min=1) if count is None else count
    return (ce * known).sum() / count, (err * known).sum() / count


def keypoint_rms_cm(model: NanoVLA, mse: float) -> float:
    """A keypoint mean squared error (normalised units) -> root mean square error in centimetres."""
    if math.isnan(mse):
        return mse
    return math.sqrt(max(mse, 0.0)) * float(model.state_scale[:2].mean()) * 100.0


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def seed_all(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def train(
    cfg: TrainConfig,
    *,
    on_step: Callable[[int, float], None] | None = None,
    evaluate: Callable[[NanoVLA, int], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Train (or resume) and save the weights; returns a summary (steps, loss, time, samples).
    Under torchrun, one rank of a data-parallel run (the module docstring): rank 0 alone calls
    ``on_step`` and ``evaluate`` and writes files."""
    distributed.ranks().check_batch(cfg.batch_size)
    with distributed.joined(cfg.device) as (ranks, device):
        return _train(cfg, ranks, device, on_step if ranks.main else None, evaluate if ranks.main else None)


def _batch_loss(model: NanoVLA, images: torch.Tensor, states: torch.Tensor, text: torch.Tensor, actions: torch.Tensor,
                places: torch.Tensor, count: torch.Tensor, keypoint_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (loss, keypoint mean squared error; NaN without keypoints) of a batch (a rank's slice of one)."""
    logits, keypoints = model(images, states, text, actions)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), actions.reshape(-1))
    err = torch.full((), float("nan"))
    if keypoint_weight and keypoints.xy.shape[1]:
        heat, err = keypoint_loss(model, keypoints, places, count)
        loss = loss + heat + keypoint_weight * err
    return loss, err.detach()


def _train(cfg: TrainConfig, ranks: distributed.Ranks, device: torch.device,
           on_step: Callable[[int, float], None] | None,
           evaluate: Callable[[NanoVLA, int], dict[str, float]] | None) -> dict[str, Any]:
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    ckpt_path = out / "ckpt.pt"
    gen = seed_all(cfg.seed)  # the same on every rank: the same initialisation, global batches and word dropout
    ckpt = None
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt = torch.load(ckpt_path, weights_only=False) if ckpt_path.exists() else None
    ckpt = distributed.broadcast(ckpt, ranks)  # only rank 0's disk need hold it
    start = load_model(cfg.init)[0] if cfg.init and ckpt is None else None
    if ckpt is not None:
        mcfg = NanoVLAConfig(**ckpt["model_config"])
    elif start is not None:
        mcfg = NanoVLAConfig(**{**asdict(start.config), **cfg.model})
    else:
        mcfg = model_config(cfg.data_dir, cfg.tasks, cfg.model, cfg.keys)
    t_load = time.monotonic()
    data = load_samples(cfg.data_dir, mcfg, cfg.tasks, cfg.keys)
    log.info("%d samples from %s in %.1f s", len(data), cfg.data_dir, time.monotonic() - t_load)
    model = NanoVLA(mcfg)
    if start is not None:
        grown = grow_from(model, start.state_dict())
        log.info("initialised from %s%s", cfg.init, f" (grown: {', '.join(grown)})" if grown else "")
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    step, history, elapsed = 0, [], 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history, elapsed = ckpt["step"], ckpt["history"], ckpt["elapsed_s"]
        gen.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("resumed from %s at step %d", ckpt_path, step)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model: %.2f M parameters, prompt %d + %d action tokens", n_params / 1e6, mcfg.prompt_len, mcfg.chunk_tokens)
    model.train()
    batch_loss = distributed.data_parallel(model, _batch_loss, ranks, device)
    mine = ranks.shard(cfg.batch_size)
    started = time.monotonic() - elapsed
    loss_avg = keypoint_avg = float("nan")
    while step < cfg.steps:
        idx = torch.randint(len(data), (cfg.batch_size,), generator=gen)  # the global batch
        text = drop_words(data.text[idx], cfg.word_dropout, gen)
        count = known_places(data.places(idx), mcfg.keypoints).sum().clamp(min=1) / ranks.size
        idx, text = idx[mine], text[mine]  # this rank's slice (all of it in one process)
        loss, err = batch_loss(pixels(data.images[idx], device=device), data.states[idx].to(device), text.to(device),
                               data.actions[idx].to(device), data.places(idx).to(device), count.to(device),
                               cfg.keypoint_weight)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss_now, err_now = distributed.mean(ranks, loss, err)
        loss_avg = loss_now if math.isnan(loss_avg) else 0.95 * loss_avg + 0.05 * loss_now
        if not math.isnan(err_now):
            keypoint_avg = err_now if math.isnan(keypoint_avg) else 0.95 * keypoint_avg + 0.05 * err_now
        if on_step is not None:
            on_step(step, loss_avg)
        if step % 50 == 0:
            history.append({"step": step, "loss": round(loss_avg, 4), "keypoint_mse": round(keypoint_avg, 5),
                            "time_s": round(time.monotonic() - started, 1)})
            if step % 100 == 0:
                log.info("step %d: loss %.4f, keypoint rms %.1f cm", step, loss_avg, keypoint_rms_cm(model, keypoint_avg))
        if evaluate is not None and cfg.eval_every and step % cfg.eval_every == 0:
            model.eval()
            result = evaluate(model, step)  # rank 0 only: the others wait in their next backward
            model.train()
            history.append({"step": step, "eval": result})
            log.info("step %d eval %s", step, result)
        if ranks.main and (step % cfg.ckpt_every == 0 or step == cfg.steps):
            _checkpoint(ckpt_path, model, opt, step, history, time.monotonic() - started, gen, mcfg)
    train_s = time.monotonic() - started
    summary = {
        "steps": step, "loss": round(loss_avg, 4), "train_s": round(train_s, 1), "samples": len(data),
        "episodes": int(data.episode.max()) + 1, "parameters": n_params, "batch_size": cfg.batch_size,
        "processes": ranks.size, "seed": cfg.seed, "data_dir": cfg.data_dir, "history": history[-40:],
    }
    model.eval()
    if ranks.main:
        save_model(model, cfg.weights_path, {"training": {k: v for k, v in summary.items() if k != "history"}},
                   robot=data_robot(cfg.data_dir, cfg.keys))
        (out / "summary.json").write_text(json.dumps({**summary, "config": asdict(cfg)}, indent=1) + "\n")
    return summary


def _checkpoint(path: Path, model: NanoVLA, opt: torch.optim.Optimizer, step: int, history: list[Any],
                elapsed: float, gen: torch.Generator, mcfg: NanoVLAConfig) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({
        "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "history": history,
        "elapsed_s": elapsed, "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
        "model_config": asdict(mcfg),
    }, tmp)
    tmp.replace(path)
