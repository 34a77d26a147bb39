"""`agentrt bench engine`, part 2: slow-fast tokens against full tokens.

Prefill time of slow-fast tokens over 8x the frames (128) against full tokens over the base
frame count (16), on the same decoder, the two timed interleaved; the ratio of paired runs.
"""

from __future__ import annotations

import statistics

import torch

from agentrt.bench.report import print_rows
from agentrt.bench.synthetic import synthetic_video, timed
from agentrt.engine import Decoder, DecoderConfig, SlowFastConfig, ViT, ViTConfig, build_slowfast
from agentrt.engine.device import Placement

__all__ = ["run", "print_table"]


def run(quick: bool, device: str = "cpu", dtype: str = "float32") -> dict:
    frames_base, frames_slowfast = 16, 128
    where = Placement.parse(device, dtype)
    torch.manual_seed(0)  # the same weights on every device: made on the CPU, then moved
    vit = ViT(ViTConfig.tiny()).to(where.device, where.dtype).eval()
    lm = Decoder(DecoderConfig(vocab_size=512, width=256, depth=4, heads=4)).to(where.device, where.dtype).eval()
    projector = torch.nn.Linear(vit.config.width, lm.config.width).to(where.device, where.dtype)
    question = lm.embed(torch.randint(0, 512, (1, 16), device=where.device)).detach()
    grid = vit.config.grid
    with torch.inference_mode():
        video = synthetic_video(frames_slowfast, vit.config.image_size, device=where.device).to(where.dtype)
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
                out.append(timed(lm, embeds=seq)[1])
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


def print_table(sf: dict) -> None:
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
