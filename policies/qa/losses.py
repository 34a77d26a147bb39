"""The nano QA model's training loss: cross-entropy on the answer words and ``<eos>``, plus dense
losses from sim state: the cell probe, where in its cell each object stands, and the attention that
finding things needs (pointer, routes) with two training-only position readouts."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from policies.qa.attention import POINTER, ROUTES, question_pass
from policies.qa.batches import Batch
from policies.qa.model import NanoQA

__all__ = ["batch_loss", "READOUT_WEIGHT"]

READOUT_WEIGHT = 10.0  # the training-only position readouts, next to the answer loss


def batch_loss(model: NanoQA, batch: Batch, probe_weight: float = 1.0, pointer_weight: float = 1.0,
               locate_weight: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (answer loss + the dense losses below, per-row exact match [B, Q] (bool; padding rows False))."""
    vit = model.encode(batch.images)  # [U, grid², Cv]
    prefix = model.prefix(vit[batch.frames])  # [B, P, C]
    logits, attention, hidden = question_pass(model, prefix, batch.rows)  # [B, Q, T, V], {head: [B*Q, T, P+T]}
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
