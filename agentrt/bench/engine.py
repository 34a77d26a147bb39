"""`agentrt bench engine`: the streaming core's tricks against their plain references, side by side.

Three comparisons in one run, on a synthetic streaming video (a static textured
scene with one moving square):

- vit_cache: ViT time per frame with and without the STC-style feature cache,
  for a tiny ViT and a ViT-S/16-sized encoder (random weights), and the cosine
  between cached and full features (per token, against the full forward);
- slowfast: prefill time of slow-fast tokens over 8x the frames against full
  tokens over the base frame count, on the same decoder;
- decoding: Jacobi against greedy AR time for a 28-token block (4 steps of a
  7-dim action) on a small decoder trained here for a few seconds, checked token
  for token; the same on random weights.

Full and fast paths are timed interleaved in one process, and ratios of
medians are reported (the machine is shared and noisy).

    agentrt bench engine --quick
    agentrt bench engine --json engine.json
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from agentrt.bench.report import percentile, print_rows
from agentrt.engine import (
    Decoder,
    DecoderConfig,
    NativeRunner,
    SlowFastConfig,
    ViT,
    ViTCacheConfig,
    ViTConfig,
    ViTFeatureCache,
    build_slowfast,
    greedy_decode,
    jacobi_decode,
    prefill,
)

__all__ = ["run", "print_table", "synthetic_video"]

log = logging.getLogger(__name__)

BLOCK_TOKENS = 28  # 4 steps x 7 action dims
ACTION_DIMS = 7


def synthetic_video(frames: int, size: int, *, seed: int = 0) -> torch.Tensor:
    """[F, 3, S, S] in [-1, 1]: a fixed smooth texture, one red square moving across it."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, size // 8), max(2, size // 8), generator=g)
    scene = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]
    scene = 0.8 * scene + 0.2 * torch.rand(3, size, size, generator=g)
    side = max(2, size // 7)
    step = max(1, size // 64)
    video = scene.expand(frames, -1, -1, -1).clone()
    red = torch.tensor([1.0, 0.1, 0.1])[:, None, None]
    for f in range(frames):
        x0 = (size // 10 + f * step) % (size - side)
        y0 = size // 3 + int(round(size / 16 * torch.sin(torch.tensor(f / 6.0)).item()))
        video[f, :, y0 : y0 + side, x0 : x0 + side] = red
    return (video - 0.5) / 0.5


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - start) * 1e3


# ---------------------------------------------------------------- ViT feature cache


def _vit_cache_entry(
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
                    full, t_full = _timed(vit, x)
                    cached, t_cached = _timed(cache, x)
                else:
                    cached, t_cached = _timed(cache, x)
                    full, t_full = _timed(vit, x)
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


def bench_vit_cache(quick: bool) -> list[dict]:
    """One entry per encoder at the default settings, plus ViT-S at a longer interval (marked default=False)."""
    cache_config = ViTCacheConfig()  # the defaults are what is measured
    frames = 16 if quick else 32
    entries = [
        _vit_cache_entry("tiny", ViTConfig.tiny(), frames, 3 if quick else 7, cache_config),
        _vit_cache_entry("vit-s16", ViTConfig(), frames, 2 if quick else 5, cache_config),
    ]
    # a longer interval: fewer full frames, more drift from the reference (STC used 2-4)
    longer = ViTCacheConfig(interval=8, ratio=cache_config.ratio, skip_threshold=cache_config.skip_threshold)
    entries.append(_vit_cache_entry("vit-s16", ViTConfig(), frames, 1 if quick else 3, longer))
    for entry in entries:
        entry["default"] = entry["interval"] == cache_config.interval
    return entries


# ---------------------------------------------------------------- slow-fast tokens


def bench_slowfast(quick: bool) -> dict:
    frames_base, frames_slowfast = 16, 128
    torch.manual_seed(0)
    vit = ViT(ViTConfig.tiny()).eval()
    lm = Decoder(DecoderConfig(vocab_size=512, width=256, depth=4, heads=4)).eval()
    projector = torch.nn.Linear(vit.config.width, lm.config.width)
    question = lm.embed(torch.randint(0, 512, (1, 16))).detach()
    grid = vit.config.grid
    with torch.inference_mode():
        video = synthetic_video(frames_slowfast, vit.config.image_size)
        features = torch.cat([vit(chunk) for chunk in video.split(32)])  # [128, 64, 128]
        features = projector(features)  # [128, 64, 256] the LM's width
        base_tokens = features[-frames_base:].reshape(-1, lm.config.width)  # the newest 16 frames, full
        budget = base_tokens.shape[0]
        slowfast = build_slowfast(features, SlowFastConfig(token_budget=budget), grid=(grid, grid))
        base_seq = torch.cat([base_tokens[None], question], dim=1)
        sf_seq = torch.cat([slowfast.tokens[None], question], dim=1)
        lm(embeds=base_seq)  # warm-up
        base_ms: list[float] = []
        sf_ms: list[float] = []
        for i in range(5 if quick else 11):
            order = [(base_seq, base_ms), (sf_seq, sf_ms)]
            for seq, out in order if i % 2 else order[::-1]:
                out.append(_timed(lm, embeds=seq)[1])
    plan = slowfast.plan
    return {
        "frames_base": frames_base,
        "frames_slowfast": frames_slowfast,
        "tokens_base": int(base_seq.shape[1]),
        "tokens_slowfast": int(sf_seq.shape[1]),
        "token_budget": budget,
        "plan": {
            "slow_frames": plan.slow_frame_ids,
            "temporal_stride": plan.temporal_stride,
            "spatial_pool": plan.spatial_pool,
            "fast_grid": list(plan.fast_grid),
            "fast_tokens": plan.fast_tokens,
            "slow_tokens": plan.slow_tokens,
        },
        "ms_base": statistics.median(base_ms),
        "ms_slowfast": statistics.median(sf_ms),
        "cost_ratio": statistics.median(s / b for s, b in zip(sf_ms, base_ms, strict=True)),  # paired runs
        "token_ratio": sf_seq.shape[1] / base_seq.shape[1],
    }


# ---------------------------------------------------------------- decoding


def _repetitive_batch(batch: int, length: int, vocab: int, g: torch.Generator) -> torch.Tensor:
    """Sequences of one 7-token action repeated (a robot holding a steady motion)."""
    action = torch.randint(0, vocab, (batch, ACTION_DIMS), generator=g)
    return action.repeat(1, length // ACTION_DIMS + 1)[:, :length]


def _train_decoder(steps: int, vocab: int) -> tuple[Decoder, float, float]:
    """A few seconds of next-token training; returns the model, seconds, held-out accuracy."""
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(vocab_size=vocab, width=96, depth=2, heads=4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        batch = _repetitive_batch(32, 50, vocab, g)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        held = _repetitive_batch(64, 50, vocab, torch.Generator().manual_seed(1))
        predicted = model(held[:, :-1]).argmax(-1)[:, ACTION_DIMS:]
        accuracy = float((predicted == held[:, 1 + ACTION_DIMS :]).float().mean())
    return model, seconds, accuracy


def _decode_compare(model: Decoder, prompts: torch.Tensor, repeats: int) -> dict:
    runner = NativeRunner(model)
    ar_ms: list[float] = []
    jacobi_ms: list[float] = []
    iterations: list[int] = []
    accepted: list[float] = []
    exact = True
    with torch.inference_mode():
        for r in range(repeats):
            for i, prompt in enumerate(prompts):
                runs: list[tuple[str, list[float]]] = [("ar", ar_ms), ("jacobi", jacobi_ms)]
                tokens: dict[str, list[int]] = {}
                for kind, out in runs if (i + r) % 2 else runs[::-1]:
                    cache, last = prefill(runner, prompt)  # untimed: both share the same prefill
                    if kind == "ar":
                        result, ms = _timed(
                            greedy_decode, runner, None, BLOCK_TOKENS, cache=cache, last_logits=last
                        )
                    else:
                        result, ms = _timed(
                            jacobi_decode, runner, None, BLOCK_TOKENS, cache=cache, last_logits=last
                        )
                        iterations.append(result.stats.iterations)
                        accepted.append(result.stats.mean_accepted)
                    out.append(ms)
                    tokens[kind] = result.tokens
                exact = exact and tokens["ar"] == tokens["jacobi"]
    ar = statistics.median(ar_ms)
    jac = statistics.median(jacobi_ms)
    return {
        "block_tokens": BLOCK_TOKENS,
        "prompts": int(prompts.shape[0]),
        "ar_ms": ar,
        "jacobi_ms": jac,
        "speedup": ar / jac,
        "exact": exact,
        "iterations_mean": statistics.fmean(iterations),
        "iterations_p90": percentile([float(i) for i in iterations], 90),
        "accepted_per_pass": statistics.fmean(accepted),
    }


def bench_decoding(quick: bool) -> dict:
    vocab = 64
    model, train_s, accuracy = _train_decoder(150 if quick else 400, vocab)
    prompts = _repetitive_batch(
        4 if quick else 12, 14, vocab, torch.Generator().manual_seed(2)
    )  # two actions
    trained = _decode_compare(model, prompts, 2 if quick else 3)
    trained.update(
        {
            "model": "trained: 2 layers, width 96, on repeated 7-token actions",
            "train_s": train_s,
            "train_accuracy": accuracy,
        }
    )
    torch.manual_seed(1)
    random_model = Decoder(DecoderConfig(vocab_size=vocab, width=96, depth=2, heads=4)).eval()
    with torch.no_grad():
        for p in random_model.parameters():
            if p.dim() >= 2:
                p.normal_(std=0.4)  # the default init repeats one token; larger weights make a varied output
    random_prompts = torch.randint(
        0, vocab, (4 if quick else 12, 14), generator=torch.Generator().manual_seed(3)
    )
    trained["random_weights"] = _decode_compare(random_model, random_prompts, 1 if quick else 2)
    return trained


# ---------------------------------------------------------------- entry points


def run(quick: bool) -> dict:
    start = time.perf_counter()
    # the load average says how noisy the machine was: every ratio here is measured under it
    result: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "load_avg_start": os.getloadavg()[0]}
    log.info("engine bench: ViT feature cache")
    result["vit_cache"] = bench_vit_cache(quick)
    log.info("engine bench: slow-fast tokens")
    result["slowfast"] = bench_slowfast(quick)
    log.info("engine bench: decoding")
    result["decoding"] = bench_decoding(quick)
    result["wall_s"] = time.perf_counter() - start
    result["load_avg_end"] = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    # other processes competing for the cores make multi-threaded torch stall at its barriers
    result["machine_busy"] = max(result["load_avg_start"], result["load_avg_end"]) > cores + 0.5
    if result["machine_busy"]:
        log.warning(
            "the machine was busy (load %.1f on %d cores): ratios are unreliable; rerun when idle",
            max(result["load_avg_start"], result["load_avg_end"]),
            cores,
        )
    return result


def print_table(result: dict) -> None:
    if result.get("machine_busy"):
        print(
            f"note: the machine was busy (load {result['load_avg_start']:.1f} -> {result['load_avg_end']:.1f}, "
            f"{result['torch_threads']} torch threads): the ratios below are unreliable"
        )
    rows = []
    for e in result["vit_cache"]:
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
    sf = result["slowfast"]
    plan = sf["plan"]
    print_rows(
        "Slow-fast tokens: prefill cost",
        ["tokens", "frames", "tokens", "prefill ms", "cost ratio"],
        [
            ["full", sf["frames_base"], sf["tokens_base"], sf["ms_base"], 1.0],
            [
                f"slow-fast (pool {plan['spatial_pool']}x, stride {plan['temporal_stride']}, {len(plan['slow_frames'])} slow)",
                sf["frames_slowfast"],
                sf["tokens_slowfast"],
                sf["ms_slowfast"],
                sf["cost_ratio"],
            ],
        ],
    )
    d = result["decoding"]
    rnd = d["random_weights"]
    print_rows(
        f"Decoding a {d['block_tokens']}-token block: Jacobi vs greedy AR",
        ["model", "AR ms", "Jacobi ms", "speedup", "passes", "tok/pass", "exact"],
        [
            [
                "trained (repeated actions)",
                d["ar_ms"],
                d["jacobi_ms"],
                d["speedup"],
                d["iterations_mean"],
                d["accepted_per_pass"],
                str(d["exact"]),
            ],
            [
                "random weights",
                rnd["ar_ms"],
                rnd["jacobi_ms"],
                rnd["speedup"],
                rnd["iterations_mean"],
                rnd["accepted_per_pass"],
                str(rnd["exact"]),
            ],
        ],
    )
