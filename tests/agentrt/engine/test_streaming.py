from __future__ import annotations

import pytest
import torch

from agentrt.engine import NativeRunner, StreamingConfig, StreamingKVCache, greedy_decode
from agentrt.errors import ConfigError, ModelError
from tests.agentrt.engine._models import random_decoder, tiny_llama


def test_window_stays_within_its_bound_on_a_long_stream() -> None:
    model = random_decoder()
    stream = StreamingKVCache(model, StreamingConfig(sink_tokens=4, window_tokens=24))
    sizes = []
    g = torch.Generator().manual_seed(0)
    for _ in range(60):  # 60 frames of 5 tokens: 300 rows through a 28-row cache
        stream.append(embeds=torch.randn(5, 32, generator=g))
        assert stream.length <= 28
        sizes.append(stream.cache.nbytes())
    assert stream.peak_length == 28
    assert stream.appended == 300 and stream.evicted == 300 - stream.length
    assert len(set(sizes[10:])) == 1  # memory flat once the window is full


def test_question_reuses_the_prefix_and_matches_a_full_prefill() -> None:
    model = random_decoder(1)
    stream = StreamingKVCache(model, StreamingConfig(sink_tokens=4, window_tokens=200))
    ids = torch.randint(0, 48, (30,))
    for chunk in ids.split(7):
        stream.append(ids=chunk)
    question = torch.randint(0, 48, (5,))
    reused = stream.question_logits(question)
    assert stream.length == 30  # asking leaves no trace
    with torch.no_grad():
        full = model(torch.cat([ids, question])[None])[0, 30:]
    torch.testing.assert_close(reused, full, rtol=1e-4, atol=1e-4)
    answer = stream.ask(question, max_new_tokens=6)
    assert answer == greedy_decode(NativeRunner(model), torch.cat([ids, question]), 6).tokens
    assert stream.length == 30


def test_ask_stops_at_a_stop_token() -> None:
    model = random_decoder(2)
    stream = StreamingKVCache(model)
    stream.append(ids=torch.randint(0, 48, (10,)))
    question = torch.randint(0, 48, (3,))
    full = stream.ask(question, max_new_tokens=8)
    assert stream.ask(question, max_new_tokens=8, stop_ids=[full[2]]) == full[: full.index(full[2]) + 1]


def test_eviction_keeps_sinks_and_renumbers_positions_contiguously() -> None:
    """After eviction, every layer-0 key equals a fresh prefill of the kept tokens at positions 0..L-1.

    Layer-0 keys depend only on the token and its position, so this checks both
    which rows were kept and that their rotations were moved to the new positions.
    """
    model = random_decoder(3)
    stream = StreamingKVCache(model, StreamingConfig(sink_tokens=3, window_tokens=10))
    ids = torch.randint(0, 48, (29,))
    for chunk in ids.split(4):
        stream.append(ids=chunk)
    kept = torch.cat([ids[:3], ids[-10:]])
    assert stream.length == 13 and stream.evicted == 16
    with torch.no_grad():
        fresh = model.new_cache()
        model(kept[None], cache=fresh)
    torch.testing.assert_close(stream.cache.keys(0), fresh.keys(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stream.cache.values(0), fresh.values(0), rtol=1e-5, atol=1e-5)


def test_no_sinks_is_a_plain_sliding_window() -> None:
    model = random_decoder(4)
    stream = StreamingKVCache(model, StreamingConfig(sink_tokens=0, window_tokens=6))
    for chunk in torch.randint(0, 48, (20,)).split(3):
        stream.append(ids=chunk)
    assert stream.length <= 6


def test_misuse() -> None:
    model = random_decoder()
    stream = StreamingKVCache(model, StreamingConfig(sink_tokens=2, window_tokens=4))
    with pytest.raises(ModelError, match="does not fit the window"):
        stream.append(ids=torch.zeros(5, dtype=torch.long))
    with pytest.raises(ModelError, match="exactly one"):
        stream.append()
    with pytest.raises(ConfigError, match="window_tokens"):
        StreamingConfig(window_tokens=0)
    stream.append(ids=torch.zeros(3, dtype=torch.long))
    stream.reset()
    assert stream.length == 0 and stream.appended == 0


def test_hugging_face_llama_streams_within_the_bound_and_renumbers_positions() -> None:
    model = tiny_llama(0)
    stream = StreamingKVCache(model, StreamingConfig(sink_tokens=3, window_tokens=10))
    ids = torch.randint(0, 96, (29,), generator=torch.Generator().manual_seed(0))
    for chunk in ids.split(4):
        stream.append(ids=chunk)
        assert stream.length <= 13
    assert stream.evicted == 16
    kept = torch.cat([ids[:3], ids[-10:]])
    with torch.no_grad():
        fresh = model(kept[None], use_cache=True).past_key_values
    torch.testing.assert_close(stream.cache.layers[0].keys, fresh.layers[0].keys, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stream.cache.layers[0].values, fresh.layers[0].values, rtol=1e-5, atol=1e-5)


def test_hugging_face_question_reuses_the_prefix() -> None:
    model = tiny_llama(1)
    stream = StreamingKVCache(model, StreamingConfig(sink_tokens=4, window_tokens=100))
    ids = torch.randint(0, 96, (20,), generator=torch.Generator().manual_seed(1))
    for chunk in ids.split(6):
        stream.append(ids=chunk)
    question = torch.randint(0, 96, (4,), generator=torch.Generator().manual_seed(2))
    reused = stream.question_logits(question)
    assert stream.length == 20
    with torch.no_grad():
        full = model(torch.cat([ids, question])[None]).logits[0, 20:]
    torch.testing.assert_close(reused, full, rtol=1e-4, atol=1e-4)


def test_ask_returns_at_a_stop_token_without_decoding_past_it() -> None:
    """The answer ends at the stop id: no model pass runs after it (a stop id the greedy output hits early)."""
    model = random_decoder(2)
    runner = NativeRunner(model)
    passes = []
    forward = runner.forward
    runner.forward = lambda inputs, positions, cache: passes.append(inputs.shape[1]) or forward(  # type: ignore[method-assign]
        inputs, positions, cache)
    stream = StreamingKVCache(runner)
    stream.append(ids=torch.randint(0, 48, (10,), generator=torch.Generator().manual_seed(0)))
    question = torch.randint(0, 48, (3,), generator=torch.Generator().manual_seed(1))
    full = stream.ask(question, max_new_tokens=8)
    stop = full[1]
    passes.clear()
    answer = stream.ask(question, max_new_tokens=8, stop_ids=[stop])
    assert answer == full[: full.index(stop) + 1]
    assert len(passes) == len(answer)  # the question's pass, then one per token before the stop


def test_pieces_with_their_own_positions_are_evicted_whole_and_renumbered_by_their_span() -> None:
    """A prompt pinned as sinks, then 'images' (rows sharing positions, span < rows): eviction drops
    whole pieces and turns kept keys back by the positions removed; a tail sits after the stream and
    goes with the next append. Layer-0 keys equal a fresh prefill at the renumbered positions."""
    model = random_decoder(5)
    stream = StreamingKVCache(model, StreamingConfig(sink_tokens=0, window_tokens=10), keep_inputs=True)
    g = torch.Generator().manual_seed(5)
    stream.append(ids=torch.randint(0, 48, (3,), generator=g), sink=True)
    grid = torch.tensor([0, 0, 1, 1])  # 4 rows over 2 positions, like an M-RoPE image's rows
    pieces = [torch.randint(0, 48, (4,), generator=g) for _ in range(6)]
    for piece in pieces:
        stream.set_tail(ids=torch.randint(0, 48, (2,), generator=g))
        stream.append(ids=piece, positions=grid, span=2)
        assert stream.tail is None and stream.length <= 3 + 10
    assert stream.sink_rows == 3 and stream.evicted == 4 * 4  # whole pieces: 2 of 6 kept (8 rows)
    assert stream.next_pos == 3 + 2 * 2
    kept_ids, positions = stream.kept_inputs()
    assert torch.equal(torch.cat(kept_ids)[3:], torch.cat(pieces[-2:]))
    assert torch.equal(torch.cat(positions), torch.tensor([0, 1, 2, 3, 3, 4, 4, 5, 5, 6, 6]))
    with torch.no_grad():
        fresh = model.new_cache()
        model(torch.cat(kept_ids)[None], positions=torch.cat(positions), cache=fresh)
    torch.testing.assert_close(stream.cache.keys(0), fresh.keys(0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ModelError, match="sink rows go before"):
        stream.append(ids=torch.zeros(1, dtype=torch.long), sink=True)
