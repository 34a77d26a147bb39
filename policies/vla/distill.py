"""Consistency distillation after CEED-VLA / CLLM (REFERENCES §5): few-pass Jacobi decoding.

1. Trajectories: for ``trajectories`` training samples, Jacobi-decode the
   action block with the AR-trained teacher from a random initial guess until
   the fixed point y* (== the teacher's greedy output), keeping every state
   y(0) .. y(K). A Jacobi pass over a batch is one forward: row i of the block
   is predicted from the prompt and the guess's tokens before i.
   ``task_weights`` draws the samples of a task that many times as often (more
   trajectories of the hard task: pick_place).
2. Labels, mixed: y* where the teacher's fixed point is within ``delta_bins``
   (mean |bin error| over the xyz tokens) of the demonstration and its gripper
   tokens agree; the ground-truth tokens elsewhere.
3. Student (initialised from the teacher), per step, a random state y of a
   random trajectory::

       L_C  = mean_i KL( stopgrad Q(. | x, y*_<i) || Q(. | x, y_<i) )
       L_AR = CE( Q(label_i | x, label_<i) )
       L    = L_C + ar_weight * L_AR

   ``consistency_target="label"`` conditions L_C on the mixed label instead of y*
   (where the teacher is off, y* pulls towards its error while L_AR pulls to the
   demonstration); measured, it made no better student and, trained longer, one
   that stops short of the target in real time (policies/MODEL_CARD.md), so y*
   stays the default. Instruction words drop to ``unk`` with ``word_dropout``,
   as in the teacher's training, so the student keeps the teacher's tolerance
   of unknown wording (the labels and trajectories come from the full
   instruction).
4. Optionally (``teacher_weight`` > 0), the teacher's own distribution as a
   third term, on the mixed label's prefix::

       L_T = mean_i KL( P_teacher(. | x, label_<i) || Q(. | x~, label_<i) )

   where the teacher reads the full instruction and the student the one with
   words dropped (x~): the teacher's tolerance of unknown wording, taught
   directly rather than through the argmax labels alone. The teacher's log
   probabilities are computed once, before training. ``init`` starts the
   student from other weights (an earlier student) instead of the teacher.

Trajectories whose fixed point repeats one xyz token all along the block are
dropped (the collapse CLLM warns about).

Under torchrun (``agentrt.distributed``, CPU and gloo, like one process) the ranks
split the trajectory batches between them and share the results; every rank then
draws the same global batches, trains on its slice, and DDP averages the
gradients; rank 0 alone reports and writes the student.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from agentrt import distributed
from agentrt.errors import ConfigError
from policies.vla.model import N_BINS, NanoVLA, load_model, pixels, save_model, trained_robot
from policies.vla.train import (
    Samples,
    TrainConfig,
    drop_words,
    keypoint_loss,
    known_places,
    load_samples,
    seed_all,
)

__all__ = ["DistillConfig", "Trajectories", "WarmStart", "choose_samples", "collect_trajectories", "warm_guesses",
           "mixed_labels", "teacher_log_probs", "token_kl", "distill"]

log = logging.getLogger(__name__)

KEYPOINT_WEIGHT = TrainConfig.keypoint_weight
CONSISTENCY_TARGETS = ("fixed_point", "label")


@dataclass
class DistillConfig:
    teacher: str = ""  # empty: the shipped AR weights (found beside the package, from any folder)
    data_dir: str = "data/nano"
    out: str = "runs/distill/nano_vla_cd.safetensors"  # the shipped file only when named
    tasks: tuple[str, ...] = ()
    trajectories: int = 2000
    collect_batch: int = 128  # trajectories per batched Jacobi decode (split between the ranks of a distributed run)
    steps: int = 400
    batch_size: int = 32
    lr: float = 3e-4
    ar_weight: float = 1.0
    delta_bins: float = 6.0  # mixed labels: teacher fixed point within this mean bin error -> use it
    word_dropout: float = TrainConfig.word_dropout  # instruction words -> unk, as the teacher was trained
    task_weights: dict[str, float] = field(default_factory=dict)  # trajectories: a task's samples drawn w times as often
    consistency_target: str = "fixed_point"  # the prefix L_C aims at: fixed_point (y*) | label (the mixed label)
    teacher_weight: float = 0.0  # weight of L_T, the teacher's distribution (full instruction) on the label prefix
    init: str = ""  # the student's starting weights (same architecture); empty: the teacher's
    warm_share: float = 0.0  # share of trajectories from a warm guess (``warm_guesses``) instead of a random one
    warm_jitter_bins: float = 3.0  # warm guesses: std of the noise on their xyz tokens, in bins
    warm_shift_steps: int = 4  # warm guesses: steps the previous chunk moved on (PolicyConfig.guess_shift_steps)
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if not self.teacher:
            from policies.vla.policy import default_weights

            self.teacher = str(default_weights("ar"))
        if min(self.trajectories, self.collect_batch, self.steps, self.batch_size) < 1 or self.lr <= 0:
            raise ConfigError(
                f"DistillConfig: expected trajectories, collect_batch, steps, batch_size >= 1 and lr > 0, got "
                f"{self.trajectories}, {self.collect_batch}, {self.steps}, {self.batch_size}, {self.lr}"
            )
        if not 0.0 <= self.word_dropout < 1.0:
            raise ConfigError(f"DistillConfig: word_dropout must be in [0, 1), got {self.word_dropout}")
        if self.consistency_target not in CONSISTENCY_TARGETS:
            raise ConfigError(f"DistillConfig.consistency_target: expected one of {', '.join(CONSISTENCY_TARGETS)}, "
                              f"got {self.consistency_target!r}")
        if not 0.0 <= self.teacher_weight < math.inf:
            raise ConfigError(f"DistillConfig: teacher_weight must be finite and >= 0, got {self.teacher_weight}")
        if not 0.0 <= self.warm_share <= 1.0 or not 0.0 <= self.warm_jitter_bins < math.inf or self.warm_shift_steps < 0:
            raise ConfigError(f"DistillConfig: expected warm_share in [0, 1], warm_jitter_bins finite and >= 0, "
                              f"warm_shift_steps >= 0, got {self.warm_share}, {self.warm_jitter_bins}, {self.warm_shift_steps}")
        if not all(0.0 <= w < math.inf for w in self.task_weights.values()):
            raise ConfigError(f"DistillConfig: task weights must be finite and >= 0, got {self.task_weights}")


@dataclass
class Trajectories:
    index: torch.Tensor  # [M] sample index
    states: list[torch.Tensor]  # M tensors [K_m + 1, N]: y(0) .. y(K) (the last is the fixed point)
    fixed: torch.Tensor  # [M, N] y*
    passes: torch.Tensor  # [M] Jacobi passes to the fixed point


@dataclass(frozen=True)
class WarmStart:
    share: float  # of the trajectories
    jitter_bins: float
    shift_steps: int


@torch.no_grad()
def collect_trajectories(teacher: NanoVLA, data: Samples, count: int, gen: torch.Generator, batch: int = 128,
                         on_batch: Callable[[int], None] | None = None,
                         ranks: distributed.Ranks | None = None,
                         task_weights: Mapping[str, float] | None = None,
                         warm: WarmStart | None = None) -> Trajectories:
    """Jacobi trajectories of ``count`` random samples (``choose_samples``), ``batch`` at a time, each from
    a random guess, or with ``warm`` a share of them from a warm one (``warm_guesses``). With
    ``ranks`` (a distributed run), batch b is decoded by rank b mod size and every rank gets them all:
    the same trajectories as one process, in 1/size of the time."""
    ranks = ranks or distributed.Ranks()
    c = teacher.config
    lo, hi = c.action_ids
    n = c.chunk_tokens
    index = choose_samples(data, count, gen, task_weights)
    mine: dict[int, tuple[list[torch.Tensor], torch.Tensor]] = {}  # batch number -> (states, passes)
    for number, start in enumerate(range(0, len(index), batch)):
        idx = index[start : start + batch]
        y = torch.randint(lo, hi, (len(idx), n), generator=gen)  # every rank draws every guess: one generator
        if warm is not None and warm.share > 0:
            chosen = torch.rand(len(idx), generator=gen) < warm.share
            y = torch.where(chosen[:, None], warm_guesses(data.actions[idx], c.action_dims, warm, gen, (lo, hi)), y)
        if number % ranks.size != ranks.rank:
            continue
        prompt, _ = teacher.prompt(teacher.perceive(pixels(data.images[idx])), data.states[idx], data.text[idx])
        hist = [y]
        done = torch.zeros(len(idx), dtype=torch.long)
        for k in range(1, n + 1):
            y_new = teacher.action_logits(prompt, y)[..., lo:hi].argmax(-1) + lo
            same = (y_new == y).all(-1)
            done = torch.where((done == 0) & same, torch.full_like(done, k), done)
            y = y_new
            hist.append(y)
            if bool((done > 0).all()):
                break
        done = torch.where(done == 0, torch.full_like(done, n), done)
        H = torch.stack(hist, 1)  # [B, iterations + 1, N]
        mine[number] = ([H[b, : int(done[b]) + 1] for b in range(len(idx))], done)
        if on_batch is not None:  # this batch's round: the ranks decode theirs alongside
            on_batch(len(index[start : start + batch * ranks.size]))
    every = {k: v for part in distributed.gather(mine, ranks) for k, v in part.items()}
    states = [s for k in sorted(every) for s in every[k][0]]
    return Trajectories(index, states, torch.stack([s[-1] for s in states]),  # the last state is the fixed point
                        torch.cat([every[k][1] for k in sorted(every)]))


def warm_guesses(actions: torch.Tensor, action_dims: int, warm: WarmStart, gen: torch.Generator,
                 action_ids: tuple[int, int]) -> torch.Tensor:
    """[B, N] guesses like Jacobi's first one at inference (the previous chunk moved on by ``shift_steps``,
    its last step repeated behind: ``policies.vla.policy.shifted_guess``), made from the demonstration's
    chunk ``actions`` [B, N]: the previous plan meant the same first steps, give or take its error, so its
    first K - shift steps are kept, the last of them repeated, and every xyz token moved by rounded Gaussian
    noise of ``jitter_bins`` (gripper tokens kept). A random guess alone never looks like this: trained
    only on those, the student leaves the real first guesses slowly (more passes at inference)."""
    B, N = actions.shape
    K = N // action_dims
    steps = actions.view(B, K, action_dims)
    keep = K - min(warm.shift_steps, K - 1)
    guess = torch.cat([steps[:, :keep], steps[:, keep - 1 : keep].expand(B, K - keep, action_dims)], 1).clone()
    noise = torch.round(torch.randn(B, K, action_dims - 1, generator=gen) * warm.jitter_bins).long()
    guess[..., :-1] = (guess[..., :-1] + noise).clamp(action_ids[0], action_ids[1] - 1)
    return guess.reshape(B, N)


def choose_samples(data: Samples, count: int, gen: torch.Generator,
                   task_weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """``count`` distinct sample indices, uniformly, or with ``task_weights`` a sample of task t
    ``task_weights[t]`` times as likely as one of weight 1 (tasks not named: 1; weight 0: never)."""
    if not task_weights:
        return torch.randperm(len(data), generator=gen)[:count]
    weight = torch.tensor([float(task_weights.get(task, 1.0)) for task in data.tasks], dtype=torch.float64)
    count = min(count, int((weight > 0).sum()))
    if count == 0:
        raise ConfigError(f"task weights {dict(task_weights)} leave no sample of the tasks {sorted(set(data.tasks))}")
    return torch.multinomial(weight, count, replacement=False, generator=gen)


def task_share(data: Samples, index: torch.Tensor) -> dict[str, float]:
    """The share of each task among the samples ``index``."""
    tasks = [data.tasks[int(i)] for i in index]
    return {task: round(tasks.count(task) / max(len(tasks), 1), 3) for task in sorted(set(tasks))}


def mixed_labels(teacher: NanoVLA, data: Samples, traj: Trajectories, delta_bins: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-> labels [M, N] and a mask [M] of samples that took the teacher's fixed point."""
    D = teacher.config.action_dims
    gt = data.actions[traj.index]
    err = (traj.fixed - gt).abs().view(len(gt), -1, D)
    xyz = err[..., :-1].float().mean((1, 2))
    grip_ok = (err[..., -1] == 0).all(-1)
    use_teacher = (xyz <= delta_bins) & grip_ok
    return torch.where(use_teacher[:, None], traj.fixed, gt), use_teacher


@torch.no_grad()
def teacher_log_probs(teacher: NanoVLA, data: Samples, index: torch.Tensor, labels: torch.Tensor,
                      batch: int = 128) -> torch.Tensor:
    """[M, N, N_BINS] float16: the teacher's log probabilities of each action token after the label's
    prefix (teacher forcing), from the full instruction: L_T's target, computed once."""
    lo, hi = teacher.config.action_ids
    out = []
    for start in range(0, len(index), batch):
        idx = index[start : start + batch]
        prompt, _ = teacher.prompt(teacher.perceive(pixels(data.images[idx])), data.states[idx], data.text[idx])
        logits = teacher.action_logits(prompt, labels[start : start + batch])[..., lo:hi]
        out.append(F.log_softmax(logits.float(), -1).half())
    return torch.cat(out)


def _collapsed(fixed: torch.Tensor, D: int) -> torch.Tensor:
    """Trajectories whose fixed point holds one token for every xyz position (degenerate)."""
    xyz = fixed.view(len(fixed), -1, D)[..., :-1].reshape(len(fixed), -1)
    return (xyz == xyz[:, :1]).all(-1)


def distill(cfg: DistillConfig, *, on_progress: Callable[[str, int, int, float], None] | None = None) -> dict[str, Any]:
    """Collect trajectories from the teacher, train the student, save it; returns a summary.
    Under torchrun, one rank of a data-parallel run: rank 0 alone calls ``on_progress`` and writes the student."""
    distributed.ranks().check_batch(cfg.batch_size)
    with distributed.joined("cpu") as (ranks, _):
        return _distill(cfg, ranks, on_progress if ranks.main else None)


def token_kl(target_logp: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """mean over tokens of KL(target || softmax(logits)), the target given as log probabilities: the
    consistency term (target: the student's own prediction after y*) and the teacher's term."""
    return F.kl_div(F.log_softmax(logits, -1), target_logp, log_target=True, reduction="none").sum(-1).mean()


def _distill_loss(student: NanoVLA, images: torch.Tensor, states: torch.Tensor, text: torch.Tensor, y: torch.Tensor,
                  target: torch.Tensor, label: torch.Tensor, places: torch.Tensor, count: torch.Tensor,
                  ar_weight: float, teacher_logp: torch.Tensor | None = None,
                  teacher_weight: float = 0.0) -> torch.Tensor:
    """L_C + ar_weight * L_AR (+ teacher_weight * L_T, + the keypoint loss) of a batch (a rank's slice of
    one). The consistency target is the student's own prediction after ``target``'s prefix (y* or the
    mixed label), with no gradient; when ``target`` is ``label`` one pass serves both terms.
    ``teacher_logp``: the teacher's log probabilities after the label's prefix (``teacher_log_probs``)."""
    lo, hi = student.config.action_ids
    prompt, keypoints = student.prompt(student.perceive(pixels(images)), states, text)
    B = len(images)
    same = target is label
    inputs = [y, label] if same else [y, label, target]
    logits = student.action_logits(prompt.repeat(len(inputs), 1, 1), torch.cat(inputs))[..., lo:hi]
    lg_y, lg_label = logits[:B], logits[B : 2 * B]
    lg_target = lg_label if same else logits[2 * B :]
    loss_c = token_kl(F.log_softmax(lg_target.detach(), -1), lg_y)
    loss_ar = F.cross_entropy(lg_label.reshape(-1, N_BINS), (label - lo).reshape(-1))
    loss = loss_c + ar_weight * loss_ar
    if teacher_logp is not None and teacher_weight > 0:
        loss = loss + teacher_weight * token_kl(teacher_logp.float(), lg_label)
    if keypoints.xy.shape[1]:  # keep the grounding where the teacher had it
        heat, err = keypoint_loss(student, keypoints, places, count)
        loss = loss + heat + KEYPOINT_WEIGHT * err
    return loss


def _student(cfg: DistillConfig, teacher: NanoVLA) -> tuple[NanoVLA, dict[str, Any]]:
    """The model to train: the teacher itself, or ``cfg.init``'s weights, which must share its architecture;
    and what the student was before (``{}``, or ``cfg.init``'s own distillation record: the lineage stays
    in the metadata when the file it came from is replaced)."""
    if not cfg.init:
        return teacher.train(), {}
    student, meta = load_model(cfg.init)
    mine, theirs = asdict(student.config), asdict(teacher.config)
    if mine != theirs:
        differ = sorted(k for k, v in mine.items() if theirs.get(k) != v)
        raise ConfigError(f"distill --init {cfg.init}: its model differs from the teacher's ({', '.join(differ)}); "
                          "start from weights of the teacher's architecture")
    return student.train(), {"path": cfg.init, "distillation": meta.get("distillation")}


def _distill(cfg: DistillConfig, ranks: distributed.Ranks,
             on_progress: Callable[[str, int, int, float], None] | None) -> dict[str, Any]:
    torch.set_num_threads(cfg.threads)
    gen = seed_all(cfg.seed)  # the same on every rank: the same trajectories and global batches
    teacher, teacher_meta = load_model(cfg.teacher)
    data = load_samples(cfg.data_dir, teacher.config, cfg.tasks)
    started = time.monotonic()
    got = [0]

    def on_batch(k: int) -> None:
        got[0] += k
        if on_progress is not None:
            on_progress("trajectories", got[0], min(cfg.trajectories, len(data)), float("nan"))

    traj = collect_trajectories(teacher, data, min(cfg.trajectories, len(data)), gen, cfg.collect_batch,
                                on_batch=on_batch, ranks=ranks, task_weights=cfg.task_weights,
                                warm=WarmStart(cfg.warm_share, cfg.warm_jitter_bins, cfg.warm_shift_steps))
    collect_s = time.monotonic() - started
    keep = ~_collapsed(traj.fixed, teacher.config.action_dims)
    labels, from_teacher = mixed_labels(teacher, data, traj, cfg.delta_bins)
    kept = torch.nonzero(keep).flatten()
    if len(kept) == 0:
        log.warning("every trajectory collapsed to a repeated token; keeping them all")
        kept = torch.arange(len(traj.index))
    log.info("%d trajectories in %.0f s, mean %.1f passes to the fixed point; %d kept; %.0f%% teacher labels",
             len(traj.index), collect_s, traj.passes.float().mean(), len(kept), 100 * from_teacher.float().mean())
    teacher_logp = (teacher_log_probs(teacher, data, traj.index, labels, cfg.collect_batch)
                    if cfg.teacher_weight > 0 else None)  # before the student (maybe the teacher itself) trains
    student, init_record = _student(cfg, teacher)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    batch_loss = distributed.data_parallel(student, _distill_loss, ranks, torch.device("cpu"))
    mine = ranks.shard(cfg.batch_size)
    loss_avg = float("nan")
    t_train = time.monotonic()
    for step in range(1, cfg.steps + 1):
        pick = kept[torch.randint(len(kept), (cfg.batch_size,), generator=gen)]  # the global batch
        y = torch.stack([traj.states[int(m)][int(torch.randint(len(traj.states[int(m)]), (1,), generator=gen))] for m in pick])
        count = known_places(data.places(traj.index[pick]), student.config.keypoints).sum().clamp(min=1) / ranks.size
        text = drop_words(data.text[traj.index[pick]], cfg.word_dropout, gen)
        pick, y, text = pick[mine], y[mine], text[mine]  # this rank's slice (all of it in one process)
        idx = traj.index[pick]
        target = labels[pick] if cfg.consistency_target == "label" else traj.fixed[pick]
        loss = batch_loss(data.images[idx], data.states[idx], text, y, target, labels[pick], data.places(idx), count,
                          cfg.ar_weight, None if teacher_logp is None else teacher_logp[pick], cfg.teacher_weight)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, step / 20)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        loss_now, = distributed.mean(ranks, loss)
        loss_avg = loss_now if loss_avg != loss_avg else 0.95 * loss_avg + 0.05 * loss_now
        if on_progress is not None:
            on_progress("distill", step, cfg.steps, loss_avg)
    student.eval()
    summary = {
        "teacher": cfg.teacher, "trajectories": len(traj.index), "kept": len(kept),
        "teacher_label_share": round(float(from_teacher.float().mean()), 3),
        "task_share": task_share(data, traj.index[kept]),
        "teacher_passes_mean": round(float(traj.passes.float().mean()), 2),
        "collect_s": round(collect_s, 1), "train_s": round(time.monotonic() - t_train, 1),
        "steps": cfg.steps, "loss": round(loss_avg, 4), "processes": ranks.size,
        "config": {k: v for k, v in asdict(cfg).items()},
        **({"init": init_record} if init_record else {}),
    }
    if ranks.main:
        save_model(student, cfg.out, {"distillation": summary}, robot=trained_robot(teacher_meta, cfg.teacher))  # the teacher's
    return summary
