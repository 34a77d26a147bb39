"""`agentrt bench engine`: the streaming core's tricks against their plain references, side by side.

Three comparisons in one run, one module each, on a synthetic streaming video (a static
textured scene with one moving square; ``agentrt.bench.synthetic``):

- vit_cache (``agentrt.bench.vit_cache``): ViT time per frame with and without the STC-style feature cache,
  for encoders from a tiny ViT to ViT-L/14@336 (random weights; quick: tiny and ViT-S/16), the cache's own
  auto-off decision, r = 1 exactness, and the cosine between cached and full features;
- slowfast (``agentrt.bench.slowfast``): prefill time of slow-fast tokens over 8x the frames against full
  tokens over the base frame count, on the same decoder;
- decoding (``agentrt.bench.decoding``): Jacobi against greedy AR time for a 28-token block (4 steps of a
  7-dim action) on a small decoder trained here for a few seconds, checked token
  for token; the same on random weights.

Full and fast paths are timed interleaved in one process, and ratios of
medians are reported (the machine is shared and noisy).

    agentrt bench engine --quick
    agentrt bench engine --json engine.json
    agentrt bench engine --quick --device cuda --dtype bfloat16   # models, prompts and video made on the GPU
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import torch

from agentrt.bench import decoding, slowfast, vit_cache

__all__ = ["run", "print_table"]

log = logging.getLogger(__name__)


def run(quick: bool, device: str = "cpu", dtype: str = "float32") -> dict:
    """The three comparisons on ``device`` in ``dtype`` (``agentrt.engine.device`` spellings)."""
    start = time.perf_counter()
    # the load average says how noisy the machine was: every ratio here is measured under it
    result: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "load_avg_start": os.getloadavg()[0]}
    placed = {"device": device, "dtype": dtype}
    log.info("engine bench: ViT feature cache")
    result["vit_cache"] = vit_cache.run(quick, **placed)
    log.info("engine bench: slow-fast tokens")
    result["slowfast"] = slowfast.run(quick, **placed)
    log.info("engine bench: decoding")
    result["decoding"] = decoding.run(quick, **placed)
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
    vit_cache.print_table(result["vit_cache"])
    slowfast.print_table(result["slowfast"])
    decoding.print_table(result["decoding"])
