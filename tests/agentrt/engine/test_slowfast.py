from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.engine import SlowFastConfig, build_slowfast, plan_slowfast
from agentrt.errors import ConfigError, ModelError


def test_eight_times_the_frames_within_the_base_budget() -> None:
    """16 frames of 8x8 tokens = 1024; 128 frames fit the same budget."""
    plan = plan_slowfast(128, (8, 8), SlowFastConfig(token_budget=1024, slow_frames=2))
    assert (plan.temporal_stride, plan.spatial_pool, plan.fast_grid) == (1, 4, (2, 2))
    assert plan.slow_frame_ids == [126, 127]
    assert plan.total_tokens == 128 * 4 + 2 * 64 <= 1024


@settings(max_examples=60, deadline=None)
@given(
    frames=st.integers(1, 200),
    side=st.integers(1, 12),
    budget=st.integers(1, 4000),
    slow=st.integers(0, 4),
)
def test_plans_respect_the_budget(frames: int, side: int, budget: int, slow: int) -> None:
    config = SlowFastConfig(token_budget=budget, slow_frames=slow)
    try:
        plan = plan_slowfast(frames, (side, side), config)
    except ConfigError:
        assert -(-frames // 8) > budget  # only when even the hardest pooling cannot fit
        return
    assert plan.total_tokens <= budget
    assert len(plan.slow_frame_ids) <= slow


@pytest.mark.parametrize(("frames", "budget"), [(16, 1024), (128, 1024), (64, 300), (33, 500)])
def test_built_sequence_has_the_planned_token_count(frames: int, budget: int) -> None:
    features = torch.randn(frames, 8, 8, 16)
    out = build_slowfast(features, SlowFastConfig(token_budget=budget))
    assert out.tokens.shape == (out.plan.total_tokens, 16)
    assert out.plan.total_tokens <= budget
    assert out.segments[-1][3] == out.plan.total_tokens


def test_slow_tokens_are_full_resolution_and_fast_tokens_are_pooled() -> None:
    features = torch.randn(8, 4, 4, 3)
    out = build_slowfast(features, SlowFastConfig(token_budget=48, slow_frames=1, temporal_strides=(2,)), key_frames=[5])
    plan = out.plan
    assert (plan.temporal_stride, plan.spatial_pool, plan.slow_frame_ids) == (2, 2, [5])
    kind, frame, start, stop = out.segments[-1]
    assert (kind, frame) == ("slow", 5)
    assert torch.equal(out.tokens[start:stop], features[5].reshape(16, 3))
    # first fast group: frames 0-1 averaged, then the top-left 2x2 patch averaged
    expected = features[0:2].mean(0)[0:2, 0:2].reshape(4, 3).mean(0)
    torch.testing.assert_close(out.tokens[0], expected)


def test_slow_frames_give_way_when_the_budget_is_tight() -> None:
    plan = plan_slowfast(32, (8, 8), SlowFastConfig(token_budget=100, slow_frames=2))
    assert plan.slow_frame_ids == [31]
    assert plan.total_tokens <= 100


def test_a_generous_budget_keeps_every_frame_whole() -> None:
    plan = plan_slowfast(4, (8, 8), SlowFastConfig(token_budget=1000))
    assert (plan.temporal_stride, plan.spatial_pool, plan.slow_frame_ids) == (1, 1, [])
    assert plan.total_tokens == 256


def test_errors() -> None:
    with pytest.raises(ConfigError, match="cannot hold"):
        plan_slowfast(100, (8, 8), SlowFastConfig(token_budget=10))
    with pytest.raises(ConfigError, match="key frames"):
        plan_slowfast(4, (8, 8), SlowFastConfig(), key_frames=[4])
    with pytest.raises(ModelError, match="not square"):
        build_slowfast(torch.randn(2, 10, 4), SlowFastConfig())
    with pytest.raises(ConfigError, match="token_budget"):
        SlowFastConfig(token_budget=0)
