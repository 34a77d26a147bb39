"""Training of the nano video-QA model on rendered sim scenes (``policies.qa_data``).

One step: ``batch`` scenes, each shown as a stream of F frames (F drawn per step, the same
for the batch: 1..``max_frames``, short streams likelier), ``questions`` questions per
scene asked at the end of its stream. A moved scene shows k >= 1 frames before the move
and F - k after; with F = 1 it shows the after frame only, and "what moved?" is then
"nothing" (the stream never showed the move). The ViT runs once per distinct image, the
decoder prefix once per stream (``NanoQA.forward`` shares it between the questions).

Loss: cross-entropy on the answer words and ``<eos>``, plus dense losses from sim state
(``batch_loss``): the cell probe, where in its cell each object stands, and the attention
that finding things needs (pointer, routes) with two training-only position readouts.
``relations`` more left/right questions are asked per scene. Question words other than
colours and shapes are dropped to ``<unk>`` at random (``word_dropout``) and ``<unk>``
words inserted (``word_insert``), so reworded questions degrade gracefully. Metrics: teacher-forced exact match per question kind
(every answer token right), on training batches and on the ``val`` split.

Resumable: ``OUT/checkpoint.pt`` (model, optimiser, step, generator state) every
``checkpoint_every`` steps; ``OUT/nano_qa.safetensors`` is the latest weights.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from agentrt.errors import ConfigError
from policies.nano_qa import (
    PAD,
    POINTER,
    ROUTES,
    SPECIALS,
    UNK,
    NanoQA,
    NanoQAConfig,
    QATokenizer,
    save_model,
    split_words,
)
from policies.qa_data import KINDS, Question, Scene, load_split, make_question, vocabulary
from policies.videoqa import NANO_QA_FILE

__all__ = ["TrainQAConfig", "Batch", "BatchMaker", "train"]

log = logging.getLogger(__name__)

# Frames per training stream: 1..10, short streams likelier (they are cheaper, and the last frames matter most).
FRAME_WEIGHTS = (0.2, 0.2, 0.17, 0.13, 0.1, 0.07, 0.05, 0.04, 0.02, 0.02)


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


@dataclass
class Batch:
    images: torch.Tensor  # [U, 3, S, S] distinct images in [-1, 1]
    frames: torch.Tensor  # [B, F] index into images: each stream's frames in order
    rows: torch.Tensor  # [B, Q, T] question + answer ids (inputs)
    targets: torch.Tensor  # [B, Q, T] next-token targets, -100 outside the answer
    kinds: list[list[str]]  # [B][Q] question kind ("" for a padding row)
    cells: torch.Tensor  # [U, 2, grid²] per image and grid cell: colour, shape class (0 = nothing there)
    offsets: torch.Tensor  # [U, grid², 2] where in its cell the object stands, in half cells [-1, 1] (0 where none)
    subject: torch.Tensor  # [B, Q, 2] grid cell of each object a question names in the newest frame (-1: none)
    subject_pos: torch.Tensor  # [B, Q, 2] row of the question word naming it (shape, colour, "holding", "moved", "changed")
    answer_row: torch.Tensor  # [B, Q] the row that predicts the first answer word (the question's <a>)


class BatchMaker:
    """Draws training (or validation) batches from a split held in memory."""

    def __init__(self, scenes: list[Scene], shards: list[np.ndarray], config: NanoQAConfig, *,
                 questions: int, max_frames: int, word_dropout: float, word_insert: float = 0.0,
                 relations: int = 0) -> None:
        self.scenes, self.shards = scenes, shards
        self.tokenizer = QATokenizer(config)
        self.kinds, self.relations = questions, relations
        self.questions = questions + relations  # rows per stream
        self.max_frames, self.word_dropout, self.word_insert = max_frames, word_dropout, word_insert
        self.keep = {self.tokenizer.index[w] for w in (*config.colour_words, *config.shape_words) if w in self.tokenizer.index}
        self.colour_class = {c: i + 1 for i, c in enumerate(config.colour_words)}
        self.shape_class = {s: i + 1 for i, s in enumerate(config.shape_words)}
        self.grid, self.image_size = config.grid, config.image_size
        w = np.array(FRAME_WEIGHTS[:max_frames])
        self.frame_p = w / w.sum()

    def make(self, rng: np.random.Generator, batch: int, scene_ids: list[int] | None = None, frames: int | None = None) -> Batch:
        Fr = frames or int(rng.choice(len(self.frame_p), p=self.frame_p)) + 1
        ids = scene_ids if scene_ids is not None else rng.integers(len(self.scenes), size=batch).tolist()
        images: list[np.ndarray] = []
        cells: list[np.ndarray] = []
        offsets: list[np.ndarray] = []
        frame_index = np.zeros((len(ids), Fr), np.int64)
        all_rows: list[list[tuple[list[int], list[int], str, list[tuple[int, int]]]]] = []
        for b, i in enumerate(ids):
            scene = self.scenes[i]
            shard = self.shards[scene.shard]
            moved = scene.moved is not None and Fr >= 2
            k = int(rng.integers(1, Fr)) if moved else 0  # frames shown before the move
            for after in (True, False) if k else (True,):
                images.append(shard[scene.after if after else scene.before])
                labels, where = self._cells(scene, after=after)
                cells.append(labels)
                offsets.append(where)
                frame_index[b, : (Fr if after else k)] = len(images) - 1
            seen = scene if moved else replace(scene, moved=None)
            all_rows.append(self._questions(seen, rng))
        T = max(len(q) + len(a) - 1 for rows in all_rows for q, a, _, _ in rows)
        rows = torch.full((len(ids), self.questions, T), PAD, dtype=torch.long)
        targets = torch.full((len(ids), self.questions, T), -100, dtype=torch.long)
        kinds = [["" for _ in range(self.questions)] for _ in ids]
        subject = torch.full((len(ids), self.questions, 2), -1, dtype=torch.long)
        subject_pos = torch.zeros((len(ids), self.questions, 2), dtype=torch.long)
        answer_row = torch.zeros((len(ids), self.questions), dtype=torch.long)
        for b, qs in enumerate(all_rows):
            for j, (q, a, kind, named) in enumerate(qs):
                seq = q + a
                rows[b, j, : len(seq) - 1] = torch.tensor(seq[:-1])
                targets[b, j, len(q) - 1 : len(seq) - 1] = torch.tensor(a)
                kinds[b][j] = kind
                answer_row[b, j] = len(q) - 1
                for n, (cell, pos) in enumerate(named):
                    subject[b, j, n], subject_pos[b, j, n] = cell, pos
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return Batch(x, torch.from_numpy(frame_index), rows, targets, kinds, torch.from_numpy(np.stack(cells)),
                     torch.from_numpy(np.stack(offsets)), subject, subject_pos, answer_row)

    def _cell(self, u: float, v: float) -> int:
        step = self.image_size / self.grid
        col, row = min(max(int(u // step), 0), self.grid - 1), min(max(int(v // step), 0), self.grid - 1)
        return row * self.grid + col

    def _cells(self, scene: Scene, *, after: bool) -> tuple[np.ndarray, np.ndarray]:
        """-> ([2, grid²]: the colour and shape class of the object whose centre falls in each cell,
        [grid², 2]: where in the cell that centre is, in half cells from its middle, [-1, 1])."""
        out = np.zeros((2, self.grid * self.grid), np.int64)
        where = np.zeros((self.grid * self.grid, 2), np.float32)
        step = self.image_size / self.grid
        for o in scene.objects:
            u, v = o.pixel_after if after else o.pixel_before
            cell = self._cell(u, v)
            out[0, cell] = self.colour_class[o.colour]
            out[1, cell] = self.shape_class[o.shape]
            where[cell] = np.clip([(u / step - cell % self.grid) * 2 - 1, (v / step - cell // self.grid) * 2 - 1], -1, 1)
        return out, where

    def _questions(self, scene: Scene, rng: np.random.Generator) -> list[tuple[list[int], list[int], str, list[tuple[int, int]]]]:
        """Up to ``kinds`` questions of distinct kinds, then up to ``relations`` more left / right ones:
        (question ids, answer ids, kind, [(grid cell, question row) of each object it names])."""
        asked: list[Question] = []
        for k in rng.permutation(len(KINDS)):
            q = make_question(scene, KINDS[int(k)], rng)
            if q is not None and len(asked) < self.kinds:
                asked.append(q)
        for _ in range(self.relations):
            q = make_question(scene, "relation", rng)
            if q is not None and q.text not in {a.text for a in asked}:
                asked.append(q)
        out = []
        for q in asked:
            ids = self.tokenizer.question(q.text)
            if self.word_insert > 0 and rng.random() < self.word_insert:  # wordings never trained on
                for _ in range(int(rng.integers(1, 3))):
                    ids.insert(int(rng.integers(1, len(ids))), UNK)
                ids = ids[: len(ids) - 1][: self.tokenizer.config.question_len - 1] + [ids[-1]]
            named = []
            for index, word in _subjects(scene, q):
                token = self.tokenizer.index.get(word, UNK)
                if index >= 0 and token in ids[1:-1]:
                    named.append((self._cell(*scene.objects[index].pixel_after), ids.index(token)))
            if self.word_dropout > 0:
                ids = [UNK if (0 < n < len(ids) - 1 and t not in self.keep and rng.random() < self.word_dropout) else t
                       for n, t in enumerate(ids)]
            out.append((ids, self.tokenizer.answer(q.answer), q.kind, named))
        return out


def _subjects(scene: Scene, q: Question) -> list[tuple[int, str]]:
    """The objects a question names (none for counting or an absent colour; two for a relation),
    each with the word naming it: its shape in colour questions, its colour otherwise (colours are
    distinct within a scene), "holding" / "moved" / "changed" for those questions."""
    if q.kind in ("holding", "moved"):
        index = scene.held if q.kind == "holding" else scene.moved
        word = "changed" if "changed" in split_words(q.text) else q.kind
        return [] if index is None else [(index, word)]
    out = []
    for w in split_words(q.text):
        for i, o in enumerate(scene.objects):
            if (q.kind == "colour" and w == o.shape) or (q.kind in ("shape", "exists", "relation") and w == o.colour):
                out.append((i, w))
    return out[:2] if q.kind == "relation" else out[:1]


READOUT_WEIGHT = 10.0  # the training-only position readouts, next to the answer loss


def batch_loss(model: NanoQA, batch: Batch, probe_weight: float = 1.0, pointer_weight: float = 1.0,
               locate_weight: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (answer loss + the dense losses below, per-row exact match [B, Q] (bool; padding rows False))."""
    vit = model.encode(batch.images)  # [U, grid², Cv]
    prefix = model.prefix(vit[batch.frames])  # [B, P, C]
    logits, attention, hidden = model.forward_attention(prefix, batch.rows)  # [B, Q, T, V], {head: [B*Q, T, P+T]}
    loss = F.cross_entropy(logits.flatten(0, 2), batch.targets.flatten(), ignore_index=-100)
    if probe_weight > 0:
        loss = loss + probe_weight * _probe_loss(model, vit, batch)
    if locate_weight > 0:
        loss = loss + locate_weight * _locate_loss(model, vit, batch)
    if pointer_weight > 0:
        loss = loss + pointer_weight * _pointer_loss(model, vit, prefix.shape[1], attention, hidden, batch)
    with torch.no_grad():
        answer = batch.targets != -100
        right = (logits.argmax(-1) == batch.targets) | ~answer
        exact = right.all(-1) & answer.any(-1)
    return loss, exact


def _probe_loss(model: NanoQA, vit: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The cell probe: colour and shape class of each grid cell, object cells weighted up."""
    n_colour = model.config.probe_classes[0]
    probe = model.probe(vit).flatten(0, 1)  # [U * grid², colours + shapes]
    colour, shape = batch.cells[:, 0].flatten(), batch.cells[:, 1].flatten()
    weight = 1.0 + 9.0 * (colour > 0).float()  # the few cells with an object count as much as the empty rest
    cell_loss = (F.cross_entropy(probe[:, :n_colour], colour, reduction="none")
                 + F.cross_entropy(probe[:, n_colour:], shape, reduction="none"))
    return (weight * cell_loss).sum() / weight.sum()


def _locate_loss(model: NanoQA, vit: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Where in its cell each object stands (half cells), on the cells that hold one."""
    occupied = batch.cells[:, 0] > 0  # [U, grid²]
    if not bool(occupied.any()):
        return vit.new_zeros(())
    where = model.locate(vit).tanh()  # [U, grid², 2]
    return F.smooth_l1_loss(where[occupied], batch.offsets[occupied], beta=0.1)


def _pointer_loss(model: NanoQA, vit: torch.Tensor, P: int, attention: dict[tuple[int, int], torch.Tensor],
                  hidden: list[torch.Tensor], batch: Batch) -> torch.Tensor:
    """The attention that finding things needs, taught directly (P = prefix rows):

    - ``POINTER`` looks from each word naming an object at that object's full-resolution row (the
      newest frame's kept cells, the prefix's tail), and that word's row then says where the object
      stands (``where_readout``);
    - ``ROUTES`` look from a left/right answer row at the two naming words, and that row then says
      x(A) - x(B) (``compare_readout``)."""
    B, Qn, T = batch.rows.shape
    k = model.config.full_keep
    loss = vit.new_zeros(())
    with torch.no_grad():
        objectness = model.symbols(vit[batch.frames[:, -1]])[1]  # [B, grid²], as full_frame ranks them
        keep = objectness.topk(k, dim=1).indices.sort(dim=1).values  # [B, k]
        match = keep[:, None, None, :] == batch.subject[..., None]  # [B, Q, 2, k]
        valid = (match.any(-1) & (batch.subject >= 0)).flatten()  # [B*Q*2]
        column = (P - k + match.float().argmax(-1)).flatten()
        word_row = batch.subject_pos.flatten()  # the word naming the object: one hop from its cells
        # where each named object stands, (x, y) in [-1, 1]: cell centre + in-cell offset
        image = batch.frames[:, -1]  # [B]
        cell = batch.subject.clamp(min=0)  # [B, Q, 2]
        xy = model.cell_xy[cell] + batch.offsets[image[:, None, None], cell] / model.config.grid  # [B, Q, 2, 2]
    if bool(valid.any()):
        rows = torch.arange(B * Qn).repeat_interleave(2)[valid]
        loss = loss - attention[POINTER][rows, word_row[valid], column[valid]].mean()
        said = model.where_readout(hidden[POINTER[0]][rows, word_row[valid]])  # [n, 2]
        loss = loss + READOUT_WEIGHT * F.smooth_l1_loss(said, xy.flatten(0, 2)[valid], beta=0.1)
    relation = torch.tensor([[kind == "relation" for kind in row] for row in batch.kinds]).flatten()  # [B*Q]
    named = (batch.subject_pos > 0).all(-1).flatten() & relation
    if bool(named.any()):
        rows = torch.arange(B * Qn)[named]
        answer_row = batch.answer_row.flatten()[named]
        for n, head in enumerate(ROUTES):
            word = P + batch.subject_pos[..., n].flatten()[named]  # question rows follow the prefix
            loss = loss - attention[head][rows, answer_row, word].mean()
        apart = (xy[..., 0, 0] - xy[..., 1, 0]).flatten()[named]  # x(A) - x(B)
        said_apart = model.compare_readout(hidden[ROUTES[0][0]][rows, answer_row])[:, 0]
        loss = loss + READOUT_WEIGHT * F.smooth_l1_loss(said_apart, apart, beta=0.1)
    return loss


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
    """Train (or resume) into ``config.out``; returns the path of the weights."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    scenes, shards = load_split(config.data, "train")
    size = int(shards[0].shape[1])
    ckpt = out / "checkpoint.pt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False) if resume and ckpt.exists() else None  # our own file
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
    elif config.init:
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

    def save(final: bool = False) -> None:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rng.bit_generator.state,
                    "step": step, "model_config": asdict(model.config), "train_config": asdict(config)}, ckpt)
        save_model(model, out / NANO_QA_FILE, {"step": step, "train": asdict(config)})

    while step < config.steps:
        lr = _lr(step, config)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = maker.make(rng, config.batch)
        loss, exact = batch_loss(model, batch, locate_weight=config.locate_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        _tally(exact, batch.kinds, tally)
        if step % config.log_every == 0 or step == config.steps:
            elapsed = time.perf_counter() - start
            rate = (step - start_step) / max(elapsed, 1e-9)
            acc = sum(v[0] for v in tally.values()) / max(sum(v[1] for v in tally.values()), 1)
            per = " ".join(f"{k[:4]} {v[0] / max(v[1], 1):.2f}" for k, v in sorted(tally.items()))
            report(f"step {step}/{config.steps} loss {np.mean(losses):.3f} acc {acc:.3f} [{per}] lr {lr:.1e} "
                   f"{rate * config.batch * config.questions:.0f} q/s, eta {(config.steps - step) / max(rate, 1e-9) / 60:.1f} min")
            tally, losses = {}, []
        if val_maker is not None and (step % config.val_every == 0 or step == config.steps):
            v = validate(model, val_maker)
            report(f"val step {step}: all {v['all']:.3f} " + " ".join(f"{k} {a:.2f}" for k, a in v.items() if k != "all"))
        if step % config.checkpoint_every == 0:
            save()
        if config.max_minutes and time.perf_counter() - start > config.max_minutes * 60:
            report(f"stopping at step {step}: --max-minutes {config.max_minutes:g} reached (resume with the same command)")
            break
    save()
    report(f"weights {out / NANO_QA_FILE} (step {step}, {(time.perf_counter() - start) / 60:.1f} min)")
    return out / NANO_QA_FILE


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
