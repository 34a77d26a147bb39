"""Training batches of the nano QA model: streams of 1..``max_frames`` frames of a scene, questions
about the stream's end, and the dense labels from sim state that the losses need (``policies.qa.losses``).

A moved scene shows k >= 1 frames before the move and F - k after; with F = 1 it shows the
after frame only, and "what moved?" is then "nothing" (the stream never showed the move).
Question words other than colours and shapes are dropped to ``<unk>`` at random
(``word_dropout``) and ``<unk>`` words inserted (``word_insert``), so reworded questions
degrade gracefully.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from policies.qa.data import KINDS, Question, Scene, make_question
from policies.qa.model import PAD, UNK, NanoQAConfig, QATokenizer
from policies.vocabulary import split_words

__all__ = ["Batch", "BatchMaker", "FRAME_WEIGHTS"]

# Frames per training stream: 1..10, short streams likelier (they are cheaper, and the last frames matter most).
FRAME_WEIGHTS = (0.2, 0.2, 0.17, 0.13, 0.1, 0.07, 0.05, 0.04, 0.02, 0.02)


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

    def select(self, streams: slice) -> Batch:
        """These streams only, with the distinct images they show (a rank's slice of a global batch);
        rows keep the global batch's length, so each row is what the whole batch would give it."""
        used = torch.unique(self.frames[streams])  # sorted
        index = torch.full((len(self.images),), -1, dtype=torch.long)
        index[used] = torch.arange(len(used))
        return Batch(self.images[used], index[self.frames[streams]], self.rows[streams], self.targets[streams],
                     self.kinds[streams], self.cells[used], self.offsets[used], self.subject[streams],
                     self.subject_pos[streams], self.answer_row[streams])


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
