"""Slow-fast tokens: many frames pooled hard (fast) plus few frames at full resolution (slow).

Given a token budget and a frame count, ``plan_slowfast`` chooses the pooling:

1. slow tokens: ``slow_frames`` frames (the newest, or the key frames given)
   at full resolution; fewer slow frames if the budget cannot hold them;
2. fast tokens: every frame, averaged over groups of ``temporal_stride``
   consecutive frames and pooled spatially by a factor p (adaptive average to a
   ceil(H/p) x ceil(W/p) grid). The smallest temporal stride (from
   ``temporal_strides``) that leaves at least a ``min_fast_grid`` grid is used,
   with the smallest p that fits what the slow tokens leave of the budget.
   Temporal resolution comes first because the fast path exists to cover time;
   the slow path carries spatial detail.

The sequence is ``[fast tokens in time order; slow tokens, oldest slow frame
first]``, so the full-resolution newest frame sits next to the question. Both
paths stay in the LM sequence (the Slow-Fast MLLM's cross-attended slow path
is a model change, not an inference technique, and is left to the model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from agentrt.errors import ConfigError, ModelError

__all__ = ["SlowFastConfig", "SlowFastPlan", "SlowFastTokens", "plan_slowfast", "build_slowfast"]


@dataclass
class SlowFastConfig:
    token_budget: int = 1024  # visual tokens the LM sequence may hold
    slow_frames: int = 2  # full-resolution frames (newest, unless key frames are given)
    temporal_strides: tuple[int, ...] = (1, 2, 4, 8)  # fast-path frame grouping, tried smallest first
    min_fast_grid: int = 2  # a fast frame keeps at least this many tokens per side, else pool in time

    def __post_init__(self) -> None:
        if self.token_budget < 1:
            raise ConfigError(f"SlowFastConfig.token_budget: expected >= 1, got {self.token_budget}")
        if self.slow_frames < 0:
            raise ConfigError(f"SlowFastConfig.slow_frames: expected >= 0, got {self.slow_frames}")
        if not self.temporal_strides or any(s < 1 for s in self.temporal_strides):
            raise ConfigError(
                f"SlowFastConfig.temporal_strides: expected ints >= 1, got {self.temporal_strides}"
            )
        if self.min_fast_grid < 1:
            raise ConfigError(f"SlowFastConfig.min_fast_grid: expected >= 1, got {self.min_fast_grid}")


@dataclass
class SlowFastPlan:
    num_frames: int
    grid: tuple[int, int]  # full-resolution token grid of one frame
    temporal_stride: int
    spatial_pool: int
    fast_grid: tuple[int, int]
    slow_frame_ids: list[int]

    @property
    def fast_groups(self) -> int:
        return math.ceil(self.num_frames / self.temporal_stride)

    @property
    def fast_tokens(self) -> int:
        return self.fast_groups * self.fast_grid[0] * self.fast_grid[1]

    @property
    def slow_tokens(self) -> int:
        return len(self.slow_frame_ids) * self.grid[0] * self.grid[1]

    @property
    def total_tokens(self) -> int:
        return self.fast_tokens + self.slow_tokens


@dataclass
class SlowFastTokens:
    tokens: torch.Tensor  # [L, C] the visual part of the LM sequence
    plan: SlowFastPlan
    segments: list[tuple[str, int, int, int]] = field(
        default_factory=list
    )  # (kind, first frame, start, stop)


def _pooled(grid: tuple[int, int], p: int) -> tuple[int, int]:
    return math.ceil(grid[0] / p), math.ceil(grid[1] / p)


def plan_slowfast(
    num_frames: int,
    grid: tuple[int, int],
    config: SlowFastConfig,
    *,
    key_frames: Sequence[int] | None = None,
) -> SlowFastPlan:
    """Choose the slow frames and the fast pooling for ``num_frames`` frames of ``grid`` tokens."""
    if num_frames < 1:
        raise ConfigError(f"plan_slowfast: expected num_frames >= 1, got {num_frames}")
    H, W = grid
    if H < 1 or W < 1:
        raise ConfigError(f"plan_slowfast: expected a token grid of positive sides, got {grid}")
    if key_frames is not None:
        bad = [f for f in key_frames if not 0 <= f < num_frames]
        if bad:
            raise ConfigError(f"plan_slowfast: key frames must be in [0, {num_frames}), got {bad}")
        wanted = sorted(set(key_frames))
    else:
        wanted = list(range(max(0, num_frames - config.slow_frames), num_frames))
    per_frame = H * W
    strides = sorted(set(config.temporal_strides))
    # the fewest fast tokens any plan can have: the largest stride, a 1x1 grid
    floor_fast = math.ceil(num_frames / strides[-1])
    while wanted and floor_fast + len(wanted) * per_frame > config.token_budget:
        wanted = wanted[1:]  # drop the oldest slow frame first
    room = config.token_budget - len(wanted) * per_frame
    for stride in strides:
        groups = math.ceil(num_frames / stride)
        for p in range(1, max(H, W) + 1):
            fg = _pooled(grid, p)
            if groups * fg[0] * fg[1] <= room:
                if min(fg) >= min(config.min_fast_grid, H, W) or stride == strides[-1]:
                    if stride == 1 and p == 1:
                        wanted = []  # every frame fits at full resolution: slow copies would repeat them
                    return SlowFastPlan(num_frames, grid, stride, p, fg, wanted)
                break  # this stride needs a grid below the minimum: pool in time instead
    raise ConfigError(
        f"plan_slowfast: a budget of {config.token_budget} tokens cannot hold {num_frames} frames even at "
        f"stride {strides[-1]} and one token per group (needs {floor_fast}); raise token_budget or add a larger stride"
    )


def build_slowfast(
    features: torch.Tensor,
    config: SlowFastConfig,
    *,
    grid: tuple[int, int] | None = None,
    key_frames: Sequence[int] | None = None,
) -> SlowFastTokens:
    """features [F, H, W, C] or [F, N, C] (with ``grid``) -> the visual token sequence [L, C]."""
    if features.dim() == 3:
        if grid is None:
            side = math.isqrt(features.shape[1])
            if side * side != features.shape[1]:
                raise ModelError(
                    f"build_slowfast: {features.shape[1]} tokens per frame is not square; pass grid="
                )
            grid = (side, side)
        if grid[0] * grid[1] != features.shape[1]:
            raise ModelError(f"build_slowfast: grid {grid} does not hold {features.shape[1]} tokens")
        features = features.reshape(features.shape[0], grid[0], grid[1], features.shape[2])
    if features.dim() != 4:
        raise ModelError(
            f"build_slowfast: expected features [F, H, W, C] or [F, N, C], got {tuple(features.shape)}"
        )
    F_, H, W, C = features.shape  # frames, grid rows, grid columns, channels
    plan = plan_slowfast(F_, (H, W), config, key_frames=key_frames)
    s = plan.temporal_stride
    pad = plan.fast_groups * s - F_
    x = features.permute(0, 3, 1, 2)  # [F, C, H, W]
    groups = [x[g * s : min((g + 1) * s, F_)].mean(dim=0) for g in range(plan.fast_groups)] if pad else None
    pooled_time = (
        torch.stack(groups) if groups is not None else x.reshape(plan.fast_groups, s, C, H, W).mean(dim=1)
    )
    fast = F.adaptive_avg_pool2d(pooled_time, plan.fast_grid)  # [G, C, h, w]
    fast_tokens = fast.flatten(2).transpose(1, 2).reshape(-1, C)  # [G * h * w, C], group-major
    parts = [fast_tokens]
    segments: list[tuple[str, int, int, int]] = []
    per_group = plan.fast_grid[0] * plan.fast_grid[1]
    for g in range(plan.fast_groups):
        segments.append(("fast", g * s, g * per_group, (g + 1) * per_group))
    offset = fast_tokens.shape[0]
    for f in plan.slow_frame_ids:
        parts.append(features[f].reshape(H * W, C))
        segments.append(("slow", f, offset, offset + H * W))
        offset += H * W
    tokens = torch.cat(parts)
    assert tokens.shape[0] == plan.total_tokens
    return SlowFastTokens(tokens=tokens, plan=plan, segments=segments)
