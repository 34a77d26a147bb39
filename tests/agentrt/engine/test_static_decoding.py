"""Static-shape decoding: a preallocated KV cache, passes replayed as CUDA graphs, runners that follow their model.

Off CUDA, ``graphs="static"`` runs the very passes a GPU captures (static inputs, padding to the block size,
rows written by index, attention over the whole buffer under a mask) uncaptured, so their bookkeeping is
tested here; the captured graphs are compared with the eager path where a GPU is present.
"""

from __future__ import annotations

import pytest
import torch

from agentrt.engine import (
    HFCausalLMRunner,
    JacobiConfig,
    NativeRunner,
    StaticKVCache,
    greedy_decode,
    jacobi_decode,
)
from agentrt.errors import ConfigError, ModelError
from tests.agentrt.engine._models import random_decoder, tiny_llama

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU (none here)")


def test_static_cache_gives_the_growing_caches_logits_bit_for_bit() -> None:
    model = random_decoder(4)
    ids = torch.randint(0, 48, (1, 30), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        outs = []
        for cache in (model.new_cache(), model.new_cache(max_length=40)):
            steps = [model(ids[:, :9], cache=cache), model(ids[:, 9:10], cache=cache), model(ids[:, 10:25], cache=cache)]
            cache.crop(12)  # a Jacobi rollback: the static cache only moves its length back
            steps.append(model(ids[:, 12:30], cache=cache))
            outs.append(torch.cat(steps, dim=1))
            assert cache.length == 30
    assert isinstance(cache, StaticKVCache) and cache.buffer.shape == (2, 2, 1, 2, 40, 16)
    assert torch.equal(outs[0], outs[1])


def test_static_cache_refuses_rows_past_its_length_in_one_line() -> None:
    model = random_decoder(0)
    cache = model.new_cache(max_length=8)
    with torch.no_grad(), pytest.raises(ModelError, match="max_length=8"):
        model(torch.zeros(1, 9, dtype=torch.long), cache=cache)


@pytest.mark.parametrize("seed", range(8))
def test_static_shape_passes_decode_what_the_eager_path_decodes(seed: int) -> None:
    model = random_decoder(seed)
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, 48, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g)
    n = 20
    reference = greedy_decode(NativeRunner(model), prompt, n).tokens
    static = NativeRunner(model, max_length=64, graphs="static", block=n - 1)
    assert greedy_decode(static, prompt, n).tokens == reference
    for init in (None, torch.randint(0, 48, (n - 1,), generator=g).tolist()):
        jacobi = jacobi_decode(static, prompt, n, init=init)
        assert jacobi.tokens == reference and jacobi.stats.early_exit == ""
    assert static._passes is not None and set(static._passes.passes) <= {1, n - 1} and static._passes.passes
    assert static._passes.cache.length == len(prompt) + n - 1  # the rows known exact, padding not counted


def test_static_shape_logits_match_eager_logits_and_padding_stays_invisible() -> None:
    model = random_decoder(7)
    ids = torch.randint(0, 48, (1, 16), generator=torch.Generator().manual_seed(7))
    runner = NativeRunner(model, max_length=32, graphs="static", block=8)
    with torch.no_grad():
        full = model(ids)
        cache = runner.new_cache()
        parts = [runner.forward(ids[:, :6], torch.arange(6), cache)]  # prefill: longer than 1, fits the block
        parts.append(runner.forward(ids[:, 6:7], torch.tensor([6]), cache))  # the 1-token pass
        parts.append(runner.forward(ids[:, 7:10], torch.tensor([7, 8, 9]), cache))  # 3 rows padded to 8
        parts.append(runner.forward(ids[:, 10:16], torch.arange(10, 16), cache))
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 16 and runner.new_cache() is cache and cache.length == 0  # one cache, emptied


def test_a_pass_that_would_not_fit_the_static_cache_runs_eagerly() -> None:
    model = random_decoder(1)
    runner = NativeRunner(model, max_length=12, graphs="static", block=8)
    prompt = torch.randint(0, 48, (6,), generator=torch.Generator().manual_seed(1))
    tokens = greedy_decode(runner, prompt, 6).tokens  # 6 + 8 padded rows > 12: block passes fall back
    assert jacobi_decode(runner, prompt, 6).tokens == tokens == greedy_decode(NativeRunner(model), prompt, 6).tokens


def test_runners_follow_their_model_after_it_moves() -> None:
    model = random_decoder(2)
    runner = NativeRunner(model, max_length=48, graphs="static", block=15)
    prompt = torch.randint(0, 48, (7,), generator=torch.Generator().manual_seed(2))
    before = jacobi_decode(runner, prompt, 16).tokens
    model.double()  # new parameters: the static cache and its passes are made again, in float64
    after = jacobi_decode(runner, prompt, 16)
    assert runner._passes is not None and runner._passes.cache.buffer.dtype == torch.float64
    assert after.tokens == greedy_decode(NativeRunner(model), prompt, 16).tokens
    assert len(before) == 16
    llama = tiny_llama(0)
    hf = HFCausalLMRunner(llama, max_length=32)
    model.to("meta")
    llama.to("meta")
    assert runner.device.type == "meta" and hf.device.type == "meta"  # read from the model, not remembered


@pytest.mark.parametrize("seed", range(3))
def test_hugging_face_static_cache_equals_the_dynamic_one(seed: int) -> None:
    model = tiny_llama(seed)
    prompt = torch.randint(0, 96, (8,), generator=torch.Generator().manual_seed(seed))
    dynamic, static = HFCausalLMRunner(model), HFCausalLMRunner(model, max_length=40)
    with torch.no_grad():
        logits = []
        for runner in (dynamic, static):
            cache = runner.new_cache()
            first = runner.forward(prompt[None], torch.arange(8), cache)
            runner.forward(torch.tensor([[5, 6, 7]]), torch.arange(8, 11), cache)
            runner.crop(cache, 9)  # a rollback
            logits.append(torch.cat([first, runner.forward(torch.tensor([[9, 1]]), torch.arange(9, 11), cache)], 1))
            assert runner.cache_length(cache) == 11
    torch.testing.assert_close(logits[0], logits[1], rtol=1e-5, atol=1e-5)
    greedy = greedy_decode(dynamic, prompt, 16).tokens
    assert greedy_decode(static, prompt, 16).tokens == greedy
    assert jacobi_decode(static, prompt, 16).tokens == greedy
    capped = jacobi_decode(static, prompt, 16, JacobiConfig(max_iterations=2))
    assert capped.tokens[:2] == greedy[:2]
    with pytest.raises(ModelError, match="max_length=None"):
        static.evict(static.new_cache(), 0, 1)


def test_graph_mode_and_sizes_are_checked() -> None:
    with pytest.raises(ConfigError, match="graphs"):
        NativeRunner(random_decoder(0), max_length=8, graphs="sometimes")
    with pytest.raises(ConfigError, match="max_length"):
        NativeRunner(random_decoder(0), max_length=0)


@cuda
@pytest.mark.parametrize("seed", range(4))
def test_cuda_graphs_decode_token_for_token_what_eager_cuda_decodes(seed: int) -> None:
    model = random_decoder(seed)
    prompt = torch.randint(0, 48, (9,), generator=torch.Generator().manual_seed(seed))
    n = 24
    runner = NativeRunner(model, max_length=64, graphs="auto", block=n - 1)  # built on the CPU, moved after
    model.cuda()
    eager = greedy_decode(NativeRunner(model), prompt, n).tokens
    uncaptured = NativeRunner(model, max_length=64, graphs="static", block=n - 1)  # the same passes, not captured
    assert greedy_decode(uncaptured, prompt, n).tokens == eager
    assert greedy_decode(runner, prompt, n).tokens == eager
    for init in (None, torch.randint(0, 48, (n - 1,), generator=torch.Generator().manual_seed(seed)).tolist()):
        assert jacobi_decode(runner, prompt, n, init=init).tokens == eager
    assert runner._passes is not None and set(runner._passes.passes) == {1, n - 1}
    assert all(p.graph is not None for p in runner._passes.passes.values())
    ids = torch.tensor([eager[:5]], device="cuda")
    with torch.no_grad():  # replayed logits == the uncaptured pass's, bit for bit
        logits = []
        for r in (runner, uncaptured):
            cache = r.new_cache()
            r.forward(prompt[None].cuda(), torch.arange(9, device="cuda"), cache)
            logits.append(r.forward(ids, torch.arange(9, 14, device="cuda"), cache))
    assert torch.equal(logits[0], logits[1])
    model.cpu()  # back: eager CPU decoding, no graphs
    assert jacobi_decode(runner, prompt, n).tokens == greedy_decode(NativeRunner(model), prompt, n).tokens


@cuda
def test_the_policy_decodes_the_recorded_tokens_with_cuda_graphs_after_moving_its_model() -> None:
    import numpy as np

    from policies.vla.policy import NanoPolicy, PolicyConfig, default_weights
    from tests.policies.record_vla_tokens import FIXTURE

    if not default_weights("consistency").exists():
        pytest.skip("no shipped weights")
    data = np.load(FIXTURE)
    policy = NanoPolicy(PolicyConfig(decoding="consistency"))
    policy.model.cuda()  # after the runner was made
    same = 0
    for i in range(len(data["episode"])):
        if i == 0 or data["episode"][i] != data["episode"][i - 1]:
            policy.reset()
        policy.act(data["images"][i], data["states"][i], str(data["instructions"][i]))
        same += policy._previous == data["tokens_consistency"][i].tolist()
    assert policy.runner._passes is not None and policy.runner._passes.capture
    assert same >= len(data["episode"]) - 1  # a GPU's float order may move one near-tie, not the decoding
