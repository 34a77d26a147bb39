"""The engine benchmark's pieces (one module each: vit_cache, slowfast, decoding) on micro sizes (the real
run is `agentrt bench engine`)."""

from __future__ import annotations

import pytest
import torch

from agentrt.bench import decoding, synthetic, vit_cache
from agentrt.bench import engine as bench
from agentrt.engine import ViTCacheConfig, ViTConfig


def test_synthetic_video_is_a_static_scene_with_one_moving_object() -> None:
    video = synthetic.synthetic_video(5, 32)
    assert video.shape == (5, 3, 32, 32)
    assert video.min() >= -1 and video.max() <= 1
    changed = (video[1:] != video[:-1]).any(dim=1).float().mean(dim=(1, 2))
    assert torch.all(changed > 0) and torch.all(changed < 0.2)  # a small region moves, the rest stays


def test_vit_cache_entry_reports_the_issue_fields() -> None:
    config = ViTConfig(image_size=32, patch_size=8, width=32, depth=2, heads=2)
    entry = vit_cache.measure_encoder("micro", config, 4, 1, ViTCacheConfig(interval=2, ratio=0.25))
    for key in ("encoder", "speedup", "cosine_mean", "cosine_min", "ms_full", "ms_cached", "token_reuse_rate"):
        assert key in entry
    assert entry["encoder"] == "micro" and entry["cosine_min"] > 0.9
    assert entry["reference_rate"] == 0.5


def test_decode_compare_checks_exactness_token_for_token() -> None:
    from tests.agentrt.engine._models import random_decoder

    out = decoding.decode_compare(random_decoder(0), torch.randint(0, 48, (2, 5)), 1)
    assert out["exact"] is True
    assert {"ar_ms", "jacobi_ms", "speedup", "exact"} <= set(out)


def test_print_table_shows_all_three_comparisons(capsys: pytest.CaptureFixture[str]) -> None:
    vit = {
        "encoder": "tiny",
        "tokens": 64,
        "interval": 4,
        "ratio": 0.1,
        "ms_full": 2.0,
        "ms_cached": 1.0,
        "speedup": 2.0,
        "cosine_mean": 0.999,
        "cosine_min": 0.99,
        "error_vs_change_median": 0.1,
        "token_reuse_rate": 0.7,
    }
    decode = {"block_tokens": 28, "ar_ms": 2.0, "jacobi_ms": 1.0, "speedup": 2.0, "iterations_mean": 3.0}
    decode.update({"accepted_per_pass": 9.0, "exact": True})
    result = {
        "vit_cache": [vit],
        "slowfast": {
            "frames_base": 16,
            "frames_slowfast": 128,
            "tokens_base": 1040,
            "tokens_slowfast": 656,
            "ms_base": 2.0,
            "ms_slowfast": 1.0,
            "cost_ratio": 0.5,
            "plan": {"spatial_pool": 4, "temporal_stride": 1, "slow_frames": [126, 127]},
        },
        "decoding": {**decode, "random_weights": dict(decode)},
    }
    bench.print_table(result)
    out = capsys.readouterr().out
    assert "ViT feature cache" in out and "Slow-fast" in out and "Jacobi" in out
