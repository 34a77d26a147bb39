from __future__ import annotations

import pytest
import torch

from agentrt.engine import DecoderConfig, KVCache, rope_rotate
from agentrt.errors import ConfigError, ModelError
from tests.agentrt.engine._models import random_decoder


def test_incremental_forward_equals_full_forward() -> None:
    model = random_decoder()
    ids = torch.randint(0, 48, (1, 20))
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache()
        parts = [model(ids[:, :7], cache=cache), model(ids[:, 7:8], cache=cache), model(ids[:, 8:], cache=cache)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-4, atol=1e-4)
    assert cache.length == 20


def test_crop_then_append_equals_never_having_appended() -> None:
    model = random_decoder(1)
    ids = torch.randint(0, 48, (1, 12))
    draft = torch.randint(0, 48, (1, 5))
    with torch.no_grad():
        cache = model.new_cache()
        model(ids[:, :8], cache=cache)
        model(draft, cache=cache)  # rows that are then rolled back
        cache.crop(8)
        tail = model(ids[:, 8:], cache=cache)
        full = model(ids)
    torch.testing.assert_close(tail, full[:, 8:], rtol=1e-4, atol=1e-4)


def test_explicit_positions_and_embeddings() -> None:
    model = random_decoder(2)
    ids = torch.randint(0, 48, (1, 6))
    with torch.no_grad():
        by_ids = model(ids, positions=torch.arange(10, 16))
        by_embeds = model(embeds=model.embed(ids), positions=torch.arange(10, 16))
        shifted = model(ids)
    torch.testing.assert_close(by_ids, by_embeds)
    # rotary attention depends on relative positions only
    torch.testing.assert_close(by_ids, shifted, rtol=1e-4, atol=1e-4)


def test_rotations_compose() -> None:
    x = torch.randn(1, 2, 5, 8)
    p = torch.arange(3, 8)
    once = rope_rotate(x, p + 4, 10_000.0)
    twice = rope_rotate(rope_rotate(x, p, 10_000.0), torch.full((5,), 4), 10_000.0)
    torch.testing.assert_close(once, twice, rtol=1e-5, atol=1e-5)
    back = rope_rotate(once, torch.full((5,), -4), 10_000.0)
    torch.testing.assert_close(back, rope_rotate(x, p, 10_000.0), rtol=1e-5, atol=1e-5)


def test_kv_cache_grows_crops_and_drops() -> None:
    cache = KVCache(2)
    rows = [torch.full((1, 1, 1, 2), float(i)) for i in range(40)]
    for row in rows:
        for layer in range(2):
            cache.append(layer, row, row)
    assert cache.length == len(cache) == 40
    cache.crop(30)
    cache.drop(2, 10)
    assert cache.length == 22
    kept = cache.keys(1)[0, 0, :, 0].tolist()
    assert kept == [0.0, 1.0] + [float(i) for i in range(10, 30)]
    assert cache.values(0)[0, 0, :, 0].tolist() == kept
    assert cache.nbytes() == 2 * 2 * 22 * 2 * 4
    with pytest.raises(ModelError):
        cache.crop(23)
    with pytest.raises(ModelError):
        cache.drop(5, 30)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="even"):
        DecoderConfig(width=36, heads=4)  # head width 9: no rotary pairs
    with pytest.raises(ConfigError, match="vocab_size"):
        DecoderConfig(vocab_size=0)


def test_forward_needs_exactly_one_input() -> None:
    model = random_decoder()
    with pytest.raises(ModelError, match="exactly one"):
        model()
    with pytest.raises(ModelError, match="expected"):
        model(embeds=torch.zeros(1, 3, 7))
