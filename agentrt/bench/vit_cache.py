"""`agentrt bench engine`, part 1: the STC-style ViT feature cache against the plain ViT.

Per encoder (random weights: ``tiny``, ViT-S/16, ViT-B/16, ViT-L/14 at 336²), on a synthetic
streaming video (a static textured scene with one moving square) made on the device:

- ``speedup``: the plain forward's time per frame over the cache's, the cache forced on
  (``auto_off=False``); both timed interleaved, the device synchronised around every timing, the
  median of per-repeat ratios;
- ``auto_off`` and ``calibrated_speedup``: what the cache decided, and measured, at its own warm-up
  on this device; ``speedup_auto``: the plain forward over the cache as it runs after that decision
  (the same figure as ``speedup`` when it stayed on: the same code runs);
- ``exact_r1``: the r = 1 cache is bitwise equal to the plain forward on every frame checked;
- the cosine between cached and full features (per token, against the full forward).

    from agentrt.bench import vit_cache
    entries = vit_cache.run(quick=True, device="cuda", dtype="bfloat16", encoders=["vit-l14-336"])
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from agentrt.bench.report import print_rows
from agentrt.bench.synthetic import synthetic_video
from agentrt.engine import ViT, ViTCacheConfig, ViTConfig, ViTFeatureCache
from agentrt.engine.device import device_record, resolve_device, resolve_dtype, synchronize
from agentrt.errors import ConfigError
from agentrt.progress import ProgressLine

__all__ = ["ENCODERS", "run", "print_table", "measure_encoder"]

ENCODERS: dict[str, ViTConfig] = {
    "tiny": ViTConfig.tiny(),
    "vit-s16": ViTConfig(),
    "vit-b16": ViTConfig(width=768, depth=12, heads=12),
    "vit-l14-336": ViTConfig(image_size=336, patch_size=14, width=1024, depth=24, heads=16),
}
QUICK_ENCODERS = ("tiny", "vit-s16")
# repeats (quick, full): the big encoders' frames cost seconds each on a CPU (ViT-L/14@336: ~6 s on 2 cores)
REPEATS = {"tiny": (3, 7), "vit-s16": (2, 5), "vit-b16": (1, 3), "vit-l14-336": (1, 1)}
FRAMES = (16, 32)  # frames per repeat (quick, full); ViT-L/14@336 takes the quick count in a full run on a CPU
EXACT_FRAMES = 2  # frames the r = 1 cache is compared on, bitwise (it keeps no state between frames)


def _timed(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> tuple[Any, float]:
    synchronize(x.device)  # queued kernels from before are not this call's
    start = time.perf_counter()
    out = fn(x)
    synchronize(x.device)
    return out, (time.perf_counter() - start) * 1e3


def _exact_r1(vit: ViT, video: torch.Tensor) -> bool:
    cache = ViTFeatureCache(vit, ViTCacheConfig(ratio=1.0))
    return all(torch.equal(cache(video[f : f + 1]), vit(video[f : f + 1])) for f in range(min(EXACT_FRAMES, len(video))))


def measure_encoder(
    name: str,
    config: ViTConfig,
    frames: int,
    repeats: int,
    cache_config: ViTCacheConfig,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict:
    device = device or torch.device("cpu")
    torch.manual_seed(0)
    vit = ViT(config).to(device=device, dtype=dtype).eval()
    video = synthetic_video(frames, config.image_size, device=device).to(dtype)
    full_ms: list[float] = []
    cached_ms: list[float] = []
    auto_ms: list[float] = []
    token_cos: list[torch.Tensor] = []
    # |cached - full| / |full - previous full|: does the cache follow the motion?
    error_vs_change: list[float] = []
    previous: torch.Tensor | None = None
    stats: dict[str, float] = {}
    with torch.inference_mode():
        # the cache as shipped: it times itself over its first frames and decides, on this device
        auto = ViTFeatureCache(vit, replace(cache_config, auto_off=True))
        for f in range(10 * (cache_config.calibration_frames + 1)):  # skipped frames are not timed
            if auto.enabled is not None:
                break
            auto(video[f % frames : f % frames + 1])
        calibration = auto.calibration
        auto.reset()
        for r in range(repeats):
            forced = ViTFeatureCache(vit, replace(cache_config, auto_off=False))
            total_full = total_cached = total_auto = 0.0
            for f in range(frames):
                x = video[f : f + 1]
                # alternate which path goes first, so neither always meets a warm cache
                if (f + r) % 2:
                    full, t_full = _timed(vit, x)
                    cached, t_cached = _timed(forced, x)
                else:
                    cached, t_cached = _timed(forced, x)
                    full, t_full = _timed(vit, x)
                total_full += t_full
                total_cached += t_cached
                if not auto.enabled:  # on, it runs the code just timed; off, its own (plain) path is timed
                    total_auto += _timed(auto, x)[1]
                if r == 0:
                    full32, cached32 = full.float(), cached.float()
                    token_cos.append(F.cosine_similarity(cached32, full32, dim=-1).flatten())
                    if previous is not None:
                        change = (full32 - previous).norm().clamp_min(1e-12)
                        error_vs_change.append(float((cached32 - full32).norm() / change))
                    previous = full32.clone()
            full_ms.append(total_full / frames)
            cached_ms.append(total_cached / frames)
            auto_ms.append(total_auto / frames if not auto.enabled else total_cached / frames)
            stats = forced.stats.as_dict()
        exact = _exact_r1(vit, video)
    cos = torch.stack(token_cos)  # [F, T]
    return {
        "encoder": name,
        "tokens": config.num_tokens,
        "width": config.width,
        "depth": config.depth,
        "frames": frames,
        "repeats": repeats,
        "interval": cache_config.interval,
        "ratio": cache_config.ratio,
        "ms_full": statistics.median(full_ms),
        "ms_cached": statistics.median(cached_ms),
        # the median of per-repeat ratios: each repeat's paths ran interleaved under the same load
        "speedup": statistics.median(f / c for f, c in zip(full_ms, cached_ms, strict=True)),
        "auto_off": auto.enabled is False,  # None: still undecided (a stream of skipped frames)
        "calibrated_speedup": calibration.speedup if calibration else None,
        "speedup_auto": statistics.median(f / a for f, a in zip(full_ms, auto_ms, strict=True)),
        "exact_r1": exact,
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),  # the worst token of the worst frame
        "cosine_frame_min": float(cos.mean(dim=1).min()),  # the worst frame's mean token
        "error_vs_change_median": statistics.median(error_vs_change) if error_vs_change else 0.0,
        "frame_skip_rate": stats.get("frame_skip_rate", 0.0),
        "reference_rate": stats.get("reference_rate", 0.0),
        "token_reuse_rate": stats.get("token_reuse_rate", 0.0),
        "device_record": device_record(device, dtype),
    }


def run(
    quick: bool, device: str = "auto", dtype: str = "float32", encoders: Sequence[str] | None = None
) -> list[dict]:
    """One entry per encoder at the default cache settings; quick: tiny and ViT-S (``encoders`` picks), 16 frames."""
    where, precision = resolve_device(device), resolve_dtype(dtype)
    names = list(encoders) if encoders is not None else list(QUICK_ENCODERS if quick else ENCODERS)
    unknown = [n for n in names if n not in ENCODERS]
    if unknown:
        raise ConfigError(f"vit_cache bench: unknown encoder(s) {', '.join(unknown)}; expected {', '.join(ENCODERS)}")
    cache_config = ViTCacheConfig()  # the defaults are what is measured
    progress = ProgressLine("vit cache", total=len(names), unit="encoders")
    entries = []
    for i, name in enumerate(names):
        progress.update(i, note=f"{name} on {where}")
        repeats = REPEATS[name][0 if quick else 1]
        slow = name == "vit-l14-336" and where.type == "cpu"
        frames = FRAMES[0 if quick or slow else 1]
        entries.append(
            measure_encoder(name, ENCODERS[name], frames, repeats, cache_config, device=where, dtype=precision)
        )
    progress.update(len(names))
    progress.done()
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
                "off" if e.get("auto_off") else "on",
                e.get("speedup_auto", e["speedup"]),
                "yes" if e.get("exact_r1", True) else "NO",
                f"{e['cosine_mean']:.5f}",
                f"{e['cosine_min']:.5f}",
                e["error_vs_change_median"],
                e["token_reuse_rate"],
            ]
        )
    where = entries[0].get("device_record", {}) if entries else {}
    title = "ViT feature cache (per frame, median)"
    if where:
        title += f" on {where['device']} ({where['accelerator']}), {where['dtype']}"
    print_rows(
        title,
        [
            "encoder",
            "setting",
            "full ms",
            "cached ms",
            "speedup",
            "auto",
            "auto speedup",
            "r=1 exact",
            "cos mean",
            "cos min",
            "err/change",
            "reused",
        ],
        rows,
    )
