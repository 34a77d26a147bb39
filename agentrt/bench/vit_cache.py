"""`agentrt bench engine`, part 1: the STC-style ViT feature cache against the plain ViT.

ViT time per frame with and without the cache, for a tiny ViT and a ViT-S/16-sized encoder
(random weights), on a synthetic streaming video (a static textured scene with one moving
square), and the cosine between cached and full features (per token, against the full forward).
Both paths are timed interleaved, and ratios of medians are reported.
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from agentrt.bench.report import print_rows
from agentrt.bench.synthetic import synthetic_video, timed
from agentrt.engine import ViT, ViTCacheConfig, ViTConfig, ViTFeatureCache

__all__ = ["run", "print_table", "measure_encoder"]


def measure_encoder(
    name: str, config: ViTConfig, frames: int, repeats: int, cache_config: ViTCacheConfig
) -> dict:
    torch.manual_seed(0)
    vit = ViT(config).eval()
    video = synthetic_video(frames, config.image_size)
    full_ms: list[float] = []
    cached_ms: list[float] = []
    token_cos: list[torch.Tensor] = []
    error_vs_change: list[
        float
    ] = []  # |cached - full| / |full - previous full|: does the cache follow the motion?
    previous: torch.Tensor | None = None
    stats: dict[str, float] = {}
    with torch.inference_mode():
        vit(video[:1])  # warm-up: first-call allocations
        for r in range(repeats):
            cache = ViTFeatureCache(vit, cache_config)
            total_full = total_cached = 0.0
            for f in range(frames):
                x = video[f : f + 1]
                # alternate which path goes first, so neither always meets a warm cache
                if (f + r) % 2:
                    full, t_full = timed(vit, x)
                    cached, t_cached = timed(cache, x)
                else:
                    cached, t_cached = timed(cache, x)
                    full, t_full = timed(vit, x)
                total_full += t_full
                total_cached += t_cached
                if r == 0:
                    token_cos.append(F.cosine_similarity(cached, full, dim=-1).flatten())
                    if previous is not None:
                        change = (full - previous).norm().clamp_min(1e-12)
                        error_vs_change.append(float((cached - full).norm() / change))
                    previous = full.clone()
            full_ms.append(total_full / frames)
            cached_ms.append(total_cached / frames)
            stats = cache.stats.as_dict()
    cos = torch.stack(token_cos)  # [F, T]
    ms_full = statistics.median(full_ms)
    ms_cached = statistics.median(cached_ms)
    return {
        "encoder": name,
        "tokens": config.num_tokens,
        "width": config.width,
        "depth": config.depth,
        "frames": frames,
        "repeats": repeats,
        "interval": cache_config.interval,
        "ratio": cache_config.ratio,
        "ms_full": ms_full,
        "ms_cached": ms_cached,
        # the median of per-repeat ratios: each repeat's two paths ran interleaved under the same load
        "speedup": statistics.median(f / c for f, c in zip(full_ms, cached_ms, strict=True)),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),  # the worst token of the worst frame
        "cosine_frame_min": float(cos.mean(dim=1).min()),  # the worst frame's mean token
        "error_vs_change_median": statistics.median(error_vs_change) if error_vs_change else 0.0,
        "frame_skip_rate": stats.get("frame_skip_rate", 0.0),
        "reference_rate": stats.get("reference_rate", 0.0),
        "token_reuse_rate": stats.get("token_reuse_rate", 0.0),
    }


def run(quick: bool) -> list[dict]:
    """One entry per encoder at the default settings, plus ViT-S at a longer interval (marked default=False)."""
    cache_config = ViTCacheConfig()  # the defaults are what is measured
    frames = 16 if quick else 32
    entries = [
        measure_encoder("tiny", ViTConfig.tiny(), frames, 3 if quick else 7, cache_config),
        measure_encoder("vit-s16", ViTConfig(), frames, 2 if quick else 5, cache_config),
    ]
    # a longer interval: fewer full frames, more drift from the reference (STC used 2-4)
    longer = ViTCacheConfig(interval=8, ratio=cache_config.ratio, skip_threshold=cache_config.skip_threshold)
    entries.append(measure_encoder("vit-s16", ViTConfig(), frames, 1 if quick else 3, longer))
    for entry in entries:
        entry["default"] = entry["interval"] == cache_config.interval
    return entries


def print_table(entries: list[dict]) -> None:
    rows = []
    for e in entries:
        rows.append(
            [
                e["encoder"],
                f"{e['tokens']} tok, N={e['interval']}, r={e['ratio']}",
                e["ms_full"],
                e["ms_cached"],
                e["speedup"],
                f"{e['cosine_mean']:.5f}",
                f"{e['cosine_min']:.5f}",
                e["error_vs_change_median"],
                e["token_reuse_rate"],
            ]
        )
    print_rows(
        "ViT feature cache (per frame, median)",
        [
            "encoder",
            "setting",
            "full ms",
            "cached ms",
            "speedup",
            "cos mean",
            "cos min",
            "err/change",
            "reused",
        ],
        rows,
    )
