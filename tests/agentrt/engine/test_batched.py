"""Batched decoding equals the single-row algorithms row by row (tokens, passes, exits) on a random decoder."""

from __future__ import annotations

import pytest
import torch

from agentrt.engine import (
    JacobiConfig,
    NativeRunner,
    batched_greedy,
    batched_jacobi,
    batched_prefill,
    greedy_decode,
    jacobi_decode,
)
from agentrt.errors import ConfigError, ModelError
from tests.agentrt.engine._models import random_decoder

CONFIGS = [JacobiConfig(), JacobiConfig(max_iterations=3), JacobiConfig(max_iterations=6, tolerance_bins=6)]


def _prompts(seed: int, rows: int, length: int) -> torch.Tensor:
    return torch.randint(0, 48, (rows, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("seed", range(4))
def test_batched_greedy_equals_greedy_row_by_row(seed: int) -> None:
    model = random_decoder(seed)
    prompts = _prompts(seed, 5, 7)
    cache, last = batched_prefill(model, prompts)
    rows = batched_greedy(model, cache, last, 16, action_ids=(4, 48))
    for prompt, row in zip(prompts, rows, strict=True):
        single = greedy_decode(NativeRunner(model), prompt, 16, action_ids=(4, 48))
        assert row.tokens == single.tokens and row.stats.iterations == single.stats.iterations


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("config", CONFIGS, ids=["exact", "cap3", "cap6-tol6"])
def test_batched_jacobi_equals_jacobi_row_by_row(seed: int, config: JacobiConfig) -> None:
    model = random_decoder(seed)
    n, ids = 20, (0, 48)
    prompts = _prompts(seed, 6, 9)
    g = torch.Generator().manual_seed(100 + seed)
    # different guesses per row: none, random, and the greedy answer itself (converges in one pass)
    greedy = [greedy_decode(NativeRunner(model), p, n, action_ids=ids).tokens for p in prompts]
    inits: list[list[int] | None] = [None, torch.randint(0, 48, (n - 1,), generator=g).tolist(), greedy[2][1:],
                                     None, greedy[4][1:5], torch.randint(0, 48, (n - 1,), generator=g).tolist()]
    cache, last = batched_prefill(model, prompts)
    rows = batched_jacobi(model, cache, last, n, config, action_ids=ids, inits=inits)
    assert cache.length == prompts.shape[1]  # only the prompts stay
    passes = set()
    for b, row in enumerate(rows):
        single = jacobi_decode(NativeRunner(model), prompts[b], n, config, action_ids=ids, init=inits[b])
        assert row.tokens == single.tokens, b
        assert row.stats.iterations == single.stats.iterations
        assert row.stats.accepted_per_pass == single.stats.accepted_per_pass
        assert row.stats.early_exit == single.stats.early_exit
        passes.add(row.stats.iterations)
    assert len(passes) > 1  # the rows converged after different numbers of passes: per-row exit was exercised
    if config.max_iterations is None:
        assert [r.tokens for r in rows] == greedy


def test_batched_prefill_of_embeddings_matches_ids() -> None:
    model = random_decoder(1)
    prompts = _prompts(1, 3, 5)
    _, by_ids = batched_prefill(model, prompts)
    _, by_embeds = batched_prefill(model, model.wte(prompts).detach())
    torch.testing.assert_close(by_ids, by_embeds)


def test_misuse_is_reported() -> None:
    model = random_decoder(0)
    cache, last = batched_prefill(model, _prompts(0, 2, 4))
    with pytest.raises(ConfigError):
        batched_jacobi(model, cache, last, 8, JacobiConfig(tolerance_bins=2))  # tolerance without action ids
    with pytest.raises(ModelError):
        batched_jacobi(model, cache, last, 8, inits=[None])  # one init for two rows
    with pytest.raises(ModelError):
        batched_prefill(model, torch.zeros(0, 4, dtype=torch.long))
    with pytest.raises(ConfigError):
        batched_greedy(model, cache, last, 0)
