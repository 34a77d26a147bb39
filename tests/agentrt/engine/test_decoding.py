from __future__ import annotations

import pytest
import torch

from agentrt.engine import (
    HFCausalLMRunner,
    JacobiConfig,
    NativeRunner,
    greedy_decode,
    jacobi_decode,
    prefill,
)
from agentrt.errors import ConfigError, ModelError
from tests.agentrt.engine._models import random_decoder, tiny_llama

SEEDS = range(12)


def test_greedy_is_the_argmax_of_a_full_forward() -> None:
    model = random_decoder(3)
    prompt = torch.randint(0, 48, (9,))
    tokens = greedy_decode(NativeRunner(model), prompt, 12).tokens
    with torch.no_grad():
        logits = model(torch.cat([prompt, torch.tensor(tokens)])[None])
    assert logits[0, 8 : 8 + 12].argmax(-1).tolist() == tokens


@pytest.mark.parametrize("seed", SEEDS)
def test_jacobi_equals_greedy_on_our_decoder(seed: int) -> None:
    model = random_decoder(seed)
    runner = NativeRunner(model)
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, 48, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g)
    n = 20
    greedy = greedy_decode(runner, prompt, n)
    for init in (None, torch.randint(0, 48, (n - 1,), generator=g).tolist()):
        jacobi = jacobi_decode(runner, prompt, n, init=init)
        assert jacobi.tokens == greedy.tokens
        assert jacobi.stats.early_exit == ""
        assert 1 <= jacobi.stats.iterations <= n - 1
        assert n - 1 <= sum(jacobi.stats.accepted_per_pass) <= n
    assert len(set(greedy.tokens)) >= 2  # not one repeated token: the passes had work to do


@pytest.mark.parametrize("seed", range(10))
def test_jacobi_equals_greedy_and_generate_on_hugging_face_llama(seed: int) -> None:
    model = tiny_llama(seed)
    runner = HFCausalLMRunner(model)
    prompt = torch.randint(0, 96, (8,), generator=torch.Generator().manual_seed(seed))
    n = 16
    greedy = greedy_decode(runner, prompt, n)
    jacobi = jacobi_decode(runner, prompt, n)
    assert jacobi.tokens == greedy.tokens
    with torch.no_grad():
        generated = model.generate(prompt[None], max_new_tokens=n, do_sample=False)
    assert generated[0, 8:].tolist() == greedy.tokens


def test_jacobi_restricted_to_action_ids_equals_restricted_greedy() -> None:
    model = random_decoder(5)
    runner = NativeRunner(model)
    prompt = torch.randint(0, 48, (6,))
    ids = (20, 40)
    greedy = greedy_decode(runner, prompt, 14, action_ids=ids)
    jacobi = jacobi_decode(runner, prompt, 14, action_ids=ids)
    assert jacobi.tokens == greedy.tokens
    assert all(20 <= t < 40 for t in greedy.tokens)


def test_cache_ends_at_prompt_plus_n_minus_one_and_decoding_continues() -> None:
    model = random_decoder(6)
    runner = NativeRunner(model)
    prompt = torch.randint(0, 48, (5,))
    whole = greedy_decode(runner, prompt, 24).tokens
    cache, logits = prefill(runner, prompt)
    first = jacobi_decode(runner, None, 12, cache=cache, last_logits=logits)
    assert cache.length == 5 + 11
    # feed the last token of the block, then decode the next block from the cache
    with torch.no_grad():
        lg = model(torch.tensor([[first.tokens[-1]]]), cache=cache)
    second = jacobi_decode(runner, None, 12, cache=cache, last_logits=lg[0, -1])
    assert first.tokens + second.tokens == whole


def test_iteration_cap_exits_early_with_an_exact_prefix() -> None:
    model = random_decoder(7)
    runner = NativeRunner(model)
    prompt = torch.randint(0, 48, (6,))
    greedy = greedy_decode(runner, prompt, 20).tokens
    capped = jacobi_decode(runner, prompt, 20, JacobiConfig(max_iterations=2))
    assert capped.stats.iterations == 2 and capped.stats.early_exit == "cap"
    assert len(capped.tokens) == 20
    exact = sum(capped.stats.accepted_per_pass) + 1  # accepted prefix plus the next token
    assert capped.tokens[:exact] == greedy[:exact]


def test_tolerance_in_action_bins_exits_early() -> None:
    model = random_decoder(8)
    runner = NativeRunner(model)
    prompt = torch.randint(0, 48, (6,))
    ids = (0, 48)
    greedy = greedy_decode(runner, prompt, 20, action_ids=ids).tokens
    loose = jacobi_decode(runner, prompt, 20, JacobiConfig(tolerance_bins=48), action_ids=ids)
    assert loose.stats.early_exit == "tolerance" and loose.stats.iterations == 1
    exact = loose.stats.accepted_per_pass[0] + 1
    assert loose.tokens[:exact] == greedy[:exact]
    strict = jacobi_decode(runner, prompt, 20, JacobiConfig(tolerance_bins=0), action_ids=ids)
    assert strict.tokens == greedy


def test_tolerance_ignores_changes_outside_the_bins() -> None:
    from agentrt.engine.decoding import _within_tolerance

    assert _within_tolerance([5, 10, 11], [5, 12, 11], 1, 2, (0, 20))
    assert not _within_tolerance([5, 10, 11], [5, 13, 11], 1, 2, (0, 20))
    assert not _within_tolerance([5, 19, 11], [5, 21, 11], 1, 2, (0, 20))  # 21 is not an action id


def test_prefill_with_embeddings_matches_ids() -> None:
    model = random_decoder(9)
    runner = NativeRunner(model)
    prompt = torch.randint(0, 48, (7,))
    by_ids = greedy_decode(runner, prompt, 8).tokens
    cache, logits = prefill(runner, model.embed(prompt[None]).detach())
    assert greedy_decode(runner, None, 8, cache=cache, last_logits=logits).tokens == by_ids


def test_misuse_is_reported() -> None:
    runner = NativeRunner(random_decoder())
    prompt = torch.randint(0, 48, (3,))
    with pytest.raises(ConfigError, match="n_tokens"):
        greedy_decode(runner, prompt, 0)
    with pytest.raises(ModelError, match="last_logits"):
        jacobi_decode(runner, None, 4)
    with pytest.raises(ConfigError, match="action_ids"):
        jacobi_decode(runner, prompt, 4, JacobiConfig(tolerance_bins=2))
    with pytest.raises(ConfigError, match="max_iterations"):
        JacobiConfig(max_iterations=0)
