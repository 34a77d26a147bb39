"""What the engine benchmarks share: a synthetic streaming video and a timer."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["synthetic_video", "timed"]


def synthetic_video(frames: int, size: int, *, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """[F, 3, S, S] in [-1, 1]: a fixed smooth texture, one red square moving across it.

    Made on ``device`` with a generator there (no host-to-device copy per frame in a GPU bench).
    """
    g = torch.Generator(device=device).manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, size // 8), max(2, size // 8), generator=g, device=device)
    scene = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]
    scene = 0.8 * scene + 0.2 * torch.rand(3, size, size, generator=g, device=device)
    side = max(2, size // 7)
    step = max(1, size // 64)
    video = scene.expand(frames, -1, -1, -1).clone()
    red = torch.tensor([1.0, 0.1, 0.1], device=device)[:, None, None]
    for f in range(frames):
        x0 = (size // 10 + f * step) % (size - side)
        y0 = size // 3 + int(round(size / 16 * math.sin(f / 6.0)))
        video[f, :, y0 : y0 + side, x0 : x0 + side] = red
    return (video - 0.5) / 0.5


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - start) * 1e3
