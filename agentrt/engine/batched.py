"""Decoding many sequences at once: batched prefill, batched greedy, batched Jacobi with per-row exit.

One policy server answers many robots with one forward per pass (docs/policies.md, "Policy server").
Every row runs exactly the single-row algorithm of ``agentrt.engine.decoding``; only the passes are shared:

- ``batched_prefill``: prompts of one length [B, P] (ids or embeddings) in one forward; -> the cache
  (the B prompts' rows) and each row's last logits.
- ``batched_greedy``: n passes of one token per row; equal to ``greedy_decode`` row by row.
- ``batched_jacobi``: each row keeps its own accepted prefix and draft, as ``jacobi_decode`` does. The
  cache keeps the prompts and the first m block tokens, m the shortest accepted prefix among the active
  rows (cache rows are per sequence, so each holds its own tokens); every pass feeds each *active* row's
  block from m on (the last token left out) at positions P + m .. P + n - 2. A row that accepted more than
  m tokens recomputes the rest of its accepted prefix rather than reading it from the cache, so rows that
  accepted different lengths need no padding or ragged cache, and the fixed point and every iterate are
  the single-row algorithm's. A row leaves the batch when it converges, hits its cap or its tolerance
  (per-row early exit): later passes run only the rows still active.

The model is our ``Decoder`` (the nano VLA's); prompts must have one length (the nano VLA's always do).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agentrt.engine.decoder import Decoder
from agentrt.engine.decoding import (
    DecodeResult,
    DecodeStats,
    JacobiConfig,
    _check_ids,
    _pick,
    _within_tolerance,
)
from agentrt.engine.device import model_device
from agentrt.engine.kv_cache import KVCache
from agentrt.errors import ConfigError, ModelError

__all__ = ["batched_prefill", "batched_greedy", "batched_jacobi"]


def batched_prefill(model: Decoder, prompts: torch.Tensor) -> tuple[KVCache, torch.Tensor]:
    """prompts: ids [B, P] or embeddings [B, P, C] -> (cache of B x P rows, last logits [B, V])."""
    if prompts.dim() < 2 or prompts.shape[0] < 1 or prompts.shape[1] < 1:
        raise ModelError(f"batched_prefill: expected [B, P] ids or [B, P, C] embeddings, got {tuple(prompts.shape)}")
    device = model_device(model)
    prompts = prompts.to(device)
    cache = model.new_cache()
    positions = torch.arange(prompts.shape[1], device=device)
    if prompts.is_floating_point():
        logits = model(embeds=prompts, positions=positions, cache=cache)
    else:
        logits = model(prompts, positions=positions, cache=cache)
    return cache, logits[:, -1]


def _subset(cache: KVCache, rows: torch.Tensor) -> KVCache:
    """A new cache holding the given batch rows of ``cache`` (the prompts of the rows still active)."""
    out = KVCache(cache.num_layers)
    for layer in range(cache.num_layers):
        out.append(layer, cache.keys(layer).index_select(0, rows), cache.values(layer).index_select(0, rows))
    return out


@torch.no_grad()
def batched_greedy(model: Decoder, cache: KVCache, last_logits: torch.Tensor, n_tokens: int, *,
                   action_ids: tuple[int, int] | None = None) -> list[DecodeResult]:
    """One token per pass for every row; row b equals ``greedy_decode`` on prompt b. The cache grows."""
    _check_ids(action_ids)
    if n_tokens < 1:
        raise ConfigError(f"batched_greedy: expected n_tokens >= 1, got {n_tokens}")
    device = model_device(model)
    position = cache.length
    token = _pick(last_logits, action_ids)  # [B]
    tokens = [token]
    for _ in range(n_tokens - 1):
        logits = model(token[:, None].to(device), positions=torch.tensor([position], device=device), cache=cache)
        position += 1
        token = _pick(logits[:, -1], action_ids)
        tokens.append(token)
    rows = torch.stack(tokens, dim=1).tolist()
    passes = n_tokens - 1
    return [DecodeResult(row, DecodeStats(passes, [1] * passes)) for row in rows]


class _Row:
    """One sequence's Jacobi state, exactly ``jacobi_decode``'s: the accepted prefix and the draft ``y``."""

    def __init__(self, first: int, init: Sequence[int] | None, n: int) -> None:
        guess = list(init or [])[: n - 1]
        self.y = [first] + guess + [first] * (n - 1 - len(guess))
        self.accepted: list[int] = []
        self.stats = DecodeStats()
        self.done: list[int] | None = None

    def block(self) -> list[int]:
        return self.accepted + self.y


@torch.no_grad()
def batched_jacobi(model: Decoder, cache: KVCache, last_logits: torch.Tensor, n_tokens: int,
                   config: JacobiConfig | None = None, *, action_ids: tuple[int, int] | None = None,
                   inits: Sequence[Sequence[int] | None] | None = None) -> list[DecodeResult]:
    """Jacobi decoding of B rows in shared passes, each row exiting on its own; row b equals
    ``jacobi_decode`` on prompt b with ``init=inits[b]`` (tokens and pass counts). The cache is left
    holding the prompts only."""
    cfg = config or JacobiConfig()
    _check_ids(action_ids)
    if cfg.tolerance_bins and action_ids is None:
        raise ConfigError("batched_jacobi: tolerance_bins needs action_ids (the bins are measured in action ids)")
    if n_tokens < 1:
        raise ConfigError(f"batched_jacobi: expected n_tokens >= 1, got {n_tokens}")
    B = last_logits.shape[0]
    inits = list(inits) if inits is not None else [None] * B
    if len(inits) != B or cache.length < 1:
        raise ModelError(f"batched_jacobi: expected a prefilled cache and {B} inits, got {len(inits)}")
    device = model_device(model)
    P = cache.length
    firsts = _pick(last_logits, action_ids).tolist()
    rows = [_Row(first, init, n_tokens) for first, init in zip(firsts, inits, strict=True)]
    cap = cfg.max_iterations if cfg.max_iterations is not None else n_tokens
    for row in rows:
        if len(row.y) <= 1:  # a one-token block needs no pass
            row.done = row.y
    work, held = cache, list(range(B))  # the cache rows of the rows in ``held``, in that order
    while True:
        active = [b for b, row in enumerate(rows) if row.done is None]
        if not active:
            break
        # every active row's first m block tokens are accepted, and their cache rows (from the last pass) exact
        m = min(len(rows[b].accepted) for b in active)
        work.crop(P + m)
        if active != held:  # rows left the batch: keep the cache rows of those still in it
            keep = torch.tensor([held.index(b) for b in active], device=work.keys(0).device)
            work, held = _subset(work, keep), active
        ids = torch.tensor([rows[b].block()[m:-1] for b in active], device=device)
        logits = model(ids, positions=torch.arange(P + m, P + n_tokens - 1, device=device), cache=work)
        picked = _pick(logits, action_ids).tolist()  # [A, n - 1 - m]: block positions m + 1 .. n - 1
        for b, predictions in zip(active, picked, strict=True):
            _advance(rows[b], predictions, m, cfg, cap, action_ids)
    cache.crop(P)
    return [DecodeResult(row.done or [], row.stats) for row in rows]


def _advance(row: _Row, predictions: list[int], offset: int, cfg: JacobiConfig, cap: int,
             action_ids: tuple[int, int] | None) -> None:
    """One pass of ``jacobi_decode`` for one row, from the predictions of its block fed from ``offset`` on."""
    a, y = len(row.accepted), row.y
    m = len(y)
    # block position a + i is predicted by the fed token at a + i - 1, prediction a + i - 1 - offset; y[0] is exact
    y_new = [y[0]] + predictions[a - offset : a - offset + m - 1]
    row.stats.iterations += 1
    k = next((i for i in range(1, m) if y_new[i] != y[i]), m)
    row.stats.accepted_per_pass.append(k)
    if k == m:
        row.done = row.accepted + y
        return
    row.accepted += y[:k]
    if cfg.tolerance_bins and _within_tolerance(y, y_new, k, cfg.tolerance_bins, action_ids):
        row.stats.early_exit = "tolerance"
        row.done = row.accepted + y_new[k:]
        return
    row.y = y_new[k:]
    if row.stats.iterations >= cap:
        row.stats.early_exit = "cap"
        row.done = row.accepted + row.y
    elif len(row.y) <= 1:
        row.done = row.accepted + row.y
