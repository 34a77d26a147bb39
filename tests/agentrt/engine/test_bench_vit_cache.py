"""`agentrt.bench.vit_cache.run`: the entry the device check calls (device, dtype, encoders), on CPU here."""

from __future__ import annotations

import pytest
import torch

from agentrt.bench import vit_cache
from agentrt.engine import ViTCacheConfig, ViTConfig
from agentrt.errors import ConfigError


def test_run_on_a_named_device_and_encoder_records_both() -> None:
    (entry,) = vit_cache.run(True, device="cpu", dtype="float32", encoders=["tiny"])
    assert entry["encoder"] == "tiny" and entry["tokens"] == 64
    assert entry["device_record"]["device"] == "cpu" and entry["device_record"]["dtype"] == "float32"
    assert entry["exact_r1"] is True
    assert isinstance(entry["auto_off"], bool) and entry["calibrated_speedup"] > 0
    if not entry["auto_off"]:
        assert entry["speedup_auto"] == entry["speedup"]  # on, the auto cache runs the code timed as "cached"
    assert entry["cosine_min"] > 0.99


def test_bfloat16_entry_is_exact_at_r1() -> None:
    config = ViTConfig(image_size=32, patch_size=8, width=32, depth=2, heads=2)
    entry = vit_cache.measure_encoder(
        "micro", config, 4, 1, ViTCacheConfig(interval=2, ratio=0.25), dtype=torch.bfloat16
    )
    assert entry["exact_r1"] is True and entry["device_record"]["dtype"] == "bfloat16"
    assert entry["cosine_min"] > 0.9


def test_unknown_encoder_is_one_line() -> None:
    with pytest.raises(ConfigError, match="unknown encoder.*vit-s16"):
        vit_cache.run(True, device="cpu", encoders=["vit-h14"])
