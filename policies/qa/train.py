"""Training of the nano video-QA model on rendered sim scenes (``policies.qa.data``).

One step: ``batch`` scenes, each shown as a stream of F frames (F drawn per step, the same
for the batch: 1..``max_frames``, short streams likelier), ``questions`` questions per
scene asked at the end of its stream. A moved scene shows k >= 1 frames before the move
and F - k after; with F = 1 it shows the after frame only, and "what moved?" is then
"nothing" (the stream never showed the move). The ViT runs once per distinct image, the
decoder prefix once per stream (``policies.qa.attention`` shares it between the questions).
Batches: ``policies.qa.batches``; the loss: ``policies.qa.losses``.

Loss: cross-entropy on the answer words and ``<eos>``, plus dense losses from sim state
(``batch_loss``): the cell probe, where in its cell each object stands, and the attention
that finding things needs (pointer, routes) with two training-only position readouts.
``relations`` more left/right questions are asked per scene. Question words other than
colours and shapes are dropped to ``<unk>`` at random (``word_dropout``) and ``<unk>``
words inserted (``word_insert``), so reworded questions degrade gracefully. Metrics: teacher-forced exact match per question kind
(every answer token right), on training batches and on the ``val`` split.

Resumable: ``OUT/checkpoint.pt`` (model, optimiser, step, generator state) every
``checkpoint_every`` steps; ``OUT/nano_qa.safetensors`` is the latest weights.

Under torchrun (``agentrt.distributed``, CPU and gloo) every rank draws the same global batch
(``batch`` streams) and trains on its slice of the streams; DDP averages the gradients. The loss
terms are means over a slice's answer tokens and cells, so the ranks' average is the global
batch's loss within rounding and the slices' differing counts. Rank 0 alone reads the checkpoint
(and sends it to the others), validates, reports and writes files.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from agentrt import distributed
from agentrt.errors import ConfigError
from policies.qa.batches import FRAME_WEIGHTS, BatchMaker
from policies.qa.data import KINDS, load_split, vocabulary
from policies.qa.losses import batch_loss
from policies.qa.model import SPECIALS, NanoQA, NanoQAConfig, save_model
from policies.qa.videoqa import NANO_QA_FILE

__all__ = ["TrainQAConfig", "train", "validate", "init_from"]

log = logging.getLogger(__name__)


@dataclass
class TrainQAConfig:
    data: str = "data/qa"  # dataset folder(s) from collect-qa, comma-separated
    out: str = "runs/qa/train"
    steps: int = 4500  # from scratch: 0.95 of held-out questions (policies/NANO_QA_CARD.md)
    batch: int = 16  # scenes (streams) per step
    questions: int = 7  # questions per scene, distinct kinds (all of them when the scene allows)
    lr: float = 1.5e-3
    warmup_steps: int = 50
    weight_decay: float = 0.05
    word_dropout: float = 0.1  # question words other than colours and shapes -> <unk>
    word_insert: float = 0.1  # share of questions with 1-2 <unk> words inserted (wordings never seen)
    relations: int = 2  # extra left / right questions per scene (other pairs): one per scene was too few to learn
    locate_weight: float = 10.0  # the probe's in-cell position (sim state) next to its colour and shape
    init: str = ""  # start from these weights (a .safetensors of the same model): parts they lack start at zero
    max_frames: int = 10
    seed: int = 0
    threads: int = 1
    log_every: int = 50
    checkpoint_every: int = 250
    val_every: int = 500
    max_minutes: float = 0.0  # stop (checkpointed, resumable) after this much wall time; 0 = no limit

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or not 1 <= self.questions <= len(KINDS):
            raise ConfigError(f"TrainQAConfig: expected steps >= 1, batch >= 1, questions in 1..{len(KINDS)}, "
                              f"got {self.steps}, {self.batch}, {self.questions}")
        if not 1 <= self.max_frames <= len(FRAME_WEIGHTS):
            raise ConfigError(f"TrainQAConfig.max_frames: expected 1..{len(FRAME_WEIGHTS)}, got {self.max_frames}")


def _tally(exact: torch.Tensor, kinds: list[list[str]], into: dict[str, list[int]]) -> None:
    for b, row in enumerate(kinds):
        for j, kind in enumerate(row):
            if kind:
                into.setdefault(kind, [0, 0])
                into[kind][0] += int(exact[b, j])
                into[kind][1] += 1


@torch.no_grad()
def validate(model: NanoQA, maker: BatchMaker, *, scenes: int = 240, batch: int = 24, seed: int = 12345) -> dict[str, float]:
    """Teacher-forced exact match per kind on a fixed draw of streams and questions."""
    model.eval()
    rng = np.random.default_rng(seed)
    tally: dict[str, list[int]] = {}
    n = min(scenes, len(maker.scenes))
    for start in range(0, n, batch):
        ids = list(range(start, min(start + batch, n)))
        b = maker.make(rng, len(ids), scene_ids=ids, frames=int(rng.integers(1, maker.max_frames + 1)))
        _, exact = batch_loss(model, b, probe_weight=0.0, pointer_weight=0.0, locate_weight=0.0)
        _tally(exact, b.kinds, tally)
    model.train()
    out = {k: v[0] / max(v[1], 1) for k, v in sorted(tally.items())}
    out["all"] = sum(v[0] for v in tally.values()) / max(sum(v[1] for v in tally.values()), 1)
    return out


def train(config: TrainQAConfig, model_config: NanoQAConfig | None = None, *, resume: bool = True,
          report: Callable[[str], None] = print) -> Path:
    """Train (or resume) into ``config.out``; returns the path of the weights. Under torchrun, one rank
    of a data-parallel run (the module docstring): rank 0 alone reports and writes files."""
    distributed.ranks().check_batch(config.batch)
    with distributed.joined("cpu") as (ranks, _):
        return _train(config, model_config, ranks, resume, report if ranks.main else _quiet)


def _quiet(line: str) -> None:
    """The report of a rank other than 0: it says nothing (rank 0 speaks for the run)."""


def _train(config: TrainQAConfig, model_config: NanoQAConfig | None, ranks: distributed.Ranks, resume: bool,
           report: Callable[[str], None]) -> Path:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # the same on every rank: the same initialisation
    out = Path(config.out)
    scenes, shards = load_split(config.data, "train")
    size = int(shards[0].shape[1])
    ckpt = out / "checkpoint.pt"
    state = None
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        state = torch.load(ckpt, map_location="cpu", weights_only=False) if resume and ckpt.exists() else None  # our own file
    state = distributed.broadcast(state, ranks)  # only rank 0's disk need hold it
    if state is not None:
        mc = NanoQAConfig(**state["model_config"])
    else:
        mc = model_config or NanoQAConfig(image_size=size, words=vocabulary())
    if mc.image_size != size:
        raise ConfigError(f"the data in {config.data} is {size} px but the model expects {mc.image_size} px")
    model = NanoQA(mc)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.98))
    rng = np.random.default_rng(config.seed)
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        step = int(state["step"])
        report(f"resumed from {ckpt} at step {step}")
    elif config.init and ranks.main:  # DDP copies rank 0's weights to the others: only its disk need hold them
        report(f"starting from {config.init}: " + init_from(model, config.init))
    maker = BatchMaker(scenes, shards, model.config, questions=config.questions, max_frames=config.max_frames,
                       word_dropout=config.word_dropout, word_insert=config.word_insert, relations=config.relations)
    val_maker = None
    val_roots = [r for r in config.data.split(",") if (Path(r.strip()) / "val" / "scenes.jsonl").exists()]
    if val_roots:
        val_scenes, val_shards = load_split(",".join(val_roots), "val")
        val_maker = BatchMaker(val_scenes, val_shards, model.config, questions=len(KINDS),
                               max_frames=config.max_frames, word_dropout=0.0)
    else:
        report(f"no val split in {config.data}: validation skipped (make one with `agentrt collect-qa --split val --seed 2000000`)")
    n_params = sum(p.numel() for p in model.parameters())
    report(f"{len(scenes)} training scenes, {n_params / 1e6:.2f} M parameters, {config.steps} steps of "
           f"{config.batch} streams x {config.questions} questions")
    model.train()
    start = time.perf_counter()
    start_step = step
    tally: dict[str, list[int]] = {}
    losses: list[float] = []

    # the pointer and route losses train their readouts only on batches that name objects
    step_loss = distributed.data_parallel(model, batch_loss, ranks, torch.device("cpu"), unused_parameters=True)
    mine = ranks.shard(config.batch)

    def save() -> None:
        if not ranks.main:
            return
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rng.bit_generator.state,
                    "step": step, "model_config": asdict(model.config), "train_config": asdict(config)}, ckpt)
        save_model(model, out / NANO_QA_FILE, {"step": step, "train": asdict(config)})

    while step < config.steps:
        lr = _lr(step, config)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = maker.make(rng, config.batch).select(mine)  # every rank draws the global batch, keeps its streams
        loss, exact = step_loss(batch, locate_weight=config.locate_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        _tally(exact, batch.kinds, tally)
        if step % config.log_every == 0 or step == config.steps:
            tally = _merged(distributed.gather(tally, ranks))
            # every rank ran the same steps: the mean of the ranks' means is the global batches' mean loss
            loss_mean, = distributed.mean(ranks, float(np.mean(losses)))
            elapsed = time.perf_counter() - start
            rate = (step - start_step) / max(elapsed, 1e-9)
            acc = sum(v[0] for v in tally.values()) / max(sum(v[1] for v in tally.values()), 1)
            per = " ".join(f"{k[:4]} {v[0] / max(v[1], 1):.2f}" for k, v in sorted(tally.items()))
            report(f"step {step}/{config.steps} loss {loss_mean:.3f} acc {acc:.3f} [{per}] lr {lr:.1e} "
                   f"{rate * config.batch * config.questions:.0f} q/s, eta {(config.steps - step) / max(rate, 1e-9) / 60:.1f} min")
            tally, losses = {}, []
        if ranks.main and val_maker is not None and (step % config.val_every == 0 or step == config.steps):
            v = validate(model, val_maker)
            report(f"val step {step}: all {v['all']:.3f} " + " ".join(f"{k} {a:.2f}" for k, a in v.items() if k != "all"))
        if step % config.checkpoint_every == 0:
            save()
        # rank 0's clock decides for every rank: they stop together
        if config.max_minutes and distributed.broadcast(time.perf_counter() - start > config.max_minutes * 60, ranks):
            report(f"stopping at step {step}: --max-minutes {config.max_minutes:g} reached (resume with the same command)")
            break
    save()
    report(f"weights {out / NANO_QA_FILE} (step {step}, {(time.perf_counter() - start) / 60:.1f} min)")
    return out / NANO_QA_FILE


def _merged(tallies: list[dict[str, list[int]]]) -> dict[str, list[int]]:
    """The ranks' tallies of exact matches per kind, added up."""
    out: dict[str, list[int]] = {}
    for tally in tallies:
        for kind, (right, asked) in tally.items():
            out.setdefault(kind, [0, 0])
            out[kind][0] += right
            out[kind][1] += asked
    return out


def init_from(model: NanoQA, path: str) -> str:
    """Load the weights at ``path`` into ``model`` where names and shapes match; the parts they lack keep
    their initialisation (the new heads start at zero, so the model starts as the loaded one). When the
    vocabulary grew (new templates), the word embeddings are matched by word: known words keep theirs,
    new words start fresh. -> a summary."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise ConfigError(f"--init {path}: no such weights file (a nano_qa .safetensors)")
    given = load_file(path)
    with safe_open(path, framework="pt") as f:
        old_words = json.loads((f.metadata() or {}).get("config", "{}")).get("words", [])
    own = model.state_dict()
    embed = "decoder.wte.weight"  # the token embeddings (tied to the LM head)
    new_words: list[str] = []
    if embed in given and given[embed].shape != own[embed].shape and old_words:
        rows = own[embed].clone()
        old_index = {w: i for i, w in enumerate([*SPECIALS, *old_words])}
        for i, w in enumerate([*SPECIALS, *model.config.words]):
            if w in old_index:
                rows[i] = given[embed][old_index[w]]
            else:
                new_words.append(w)
        given[embed] = rows
    taken = {k: v for k, v in given.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(taken, strict=False)
    fresh = sorted(k for k in own if k not in taken and k != "decoder.lm_head.weight")
    return (f"{len(taken)} tensors loaded, new: {', '.join(fresh) or 'none'}"
            + (f"; new words: {' '.join(new_words)}" if new_words else ""))


def _lr(step: int, config: TrainQAConfig) -> float:
    """Linear warm-up, then cosine down to 5 % of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    t = (step - config.warmup_steps) / max(config.steps - config.warmup_steps, 1)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))
