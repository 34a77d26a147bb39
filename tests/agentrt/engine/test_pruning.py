from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.engine import TokenPruner, TokenPrunerConfig
from agentrt.errors import ConfigError, ModelError


@settings(max_examples=40, deadline=None)
@given(
    frames=st.integers(1, 4),
    tokens=st.integers(1, 40),
    channels=st.integers(2, 16),
    keep=st.integers(1, 50),
    score=st.sampled_from(["gaussian", "cosine"]),
)
def test_keeps_the_number_of_tokens_asked_for(frames: int, tokens: int, channels: int, keep: int, score: str) -> None:
    z = torch.randn(frames, tokens, channels)
    out = TokenPruner(TokenPrunerConfig(keep_tokens=keep, score=score))(z)
    k = min(keep, tokens)
    assert out.tokens.shape == (frames, k, channels)
    assert out.indices.shape == (frames, k)
    for f in range(frames):
        index = out.indices[f]
        assert torch.all(index[1:] > index[:-1])  # original order, no repeats
        assert torch.equal(out.tokens[f], z[f, index])


@pytest.mark.parametrize("score", ["gaussian", "cosine"])
def test_the_novel_token_is_kept(score: str) -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 1, 8, generator=g).expand(2, 20, 8).clone() + 0.01 * torch.randn(2, 20, 8, generator=g)
    z[0, 13] = torch.randn(8, generator=g) * 3
    z[1, 4] = -z[1, 4] * 2
    out = TokenPruner(TokenPrunerConfig(keep_tokens=1, score=score, channel_fraction=1.0))(z)
    assert out.indices[:, 0].tolist() == [13, 4]


def test_temporal_anchor_is_the_running_mean_of_chunk_means() -> None:
    pruner = TokenPruner(TokenPrunerConfig(keep_tokens=2, channel_fraction=1.0))
    a = torch.randn(2, 6, 4)
    b = torch.randn(3, 6, 4) + 5
    pruner(a)
    pruner(b)
    expected = (a.mean(dim=(0, 1)) + b.mean(dim=(0, 1))) / 2
    assert pruner._anchor_sum is not None
    torch.testing.assert_close(pruner._anchor_sum / pruner._chunks, expected)
    # a token equal to the temporal anchor and its frame mean is the least novel
    pruner.reset()
    z = torch.randn(1, 6, 4)
    assert pruner._chunks == 0
    scores = pruner(z).scores
    assert scores.shape == (1, 6)


def test_misuse() -> None:
    with pytest.raises(ConfigError, match="keep_tokens"):
        TokenPrunerConfig(keep_tokens=0)
    with pytest.raises(ConfigError, match="score"):
        TokenPrunerConfig(score="random")
    with pytest.raises(ModelError, match=r"\[F, N, C\]"):
        TokenPruner()(torch.zeros(1, 2, 3, 4))
