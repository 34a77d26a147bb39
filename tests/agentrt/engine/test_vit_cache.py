from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from agentrt.engine import ViTCacheConfig, ViTFeatureCache, as_vision_tower
from agentrt.errors import ConfigError, ModelError
from tests.agentrt.engine._models import moving_square, tiny_vit


def _stream(n: int = 7, size: int = 32) -> torch.Tensor:
    return moving_square(n, size, step=3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("class_token", [False, True])
def test_ratio_one_reproduces_the_plain_forward_exactly(class_token: bool, dtype: torch.dtype) -> None:
    """Bitwise (torch.equal): r = 1 runs the same ops in the same order as ViT.forward, in either dtype."""
    vit = tiny_vit(class_token=class_token).to(dtype)
    cache = ViTFeatureCache(vit, ViTCacheConfig(interval=3, ratio=1.0))  # auto-off on: nothing to calibrate
    assert cache.enabled is True
    with torch.no_grad():
        for frame in _stream():
            x = torch.stack([frame, frame.flip(-1)]).to(dtype)  # a batch of two streams
            assert torch.equal(cache(x), vit(x))
    assert cache.stats.token_reuse_rate == 0.0
    assert cache.stats.skipped == 0 and cache.calibration is None


def test_ratio_one_turns_the_frame_skip_off() -> None:
    vit = tiny_vit()
    cache = ViTFeatureCache(vit, ViTCacheConfig(ratio=1.0, skip_threshold=0.5))
    frame = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        cache(frame)
        nudged = frame * 1.01
        assert torch.equal(cache(nudged), vit(nudged))


def _hf_tower(kind: str) -> torch.nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    sizes = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=64, patch_size=16
    )
    if kind == "siglip":
        return SiglipVisionModel(SiglipVisionConfig(**sizes)).eval()
    return CLIPVisionModel(CLIPVisionConfig(**sizes)).eval()


@pytest.mark.parametrize("kind", ["siglip", "clip"])
def test_ratio_one_equals_hugging_face_forward(kind: str) -> None:
    model = _hf_tower(kind)
    cache = ViTFeatureCache(model, ViTCacheConfig(ratio=1.0))
    tower = as_vision_tower(model)
    with torch.no_grad():
        for frame in moving_square(4, 64, step=5):
            x = frame[None]
            expected = model(pixel_values=x).last_hidden_state
            torch.testing.assert_close(cache(x), expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(tower.forward(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["siglip", "clip"])
def test_partial_recompute_on_hugging_face_tower_stays_close(kind: str) -> None:
    model = _hf_tower(kind)
    cache = ViTFeatureCache(model, ViTCacheConfig(interval=4, ratio=0.25, skip_threshold=0.0, auto_off=False))
    with torch.no_grad():
        for frame in moving_square(6, 64, step=4, square=12):
            x = frame[None]
            cos = F.cosine_similarity(cache(x), model(pixel_values=x).last_hidden_state, dim=-1)
            assert cos.min() > 0.95  # 4 of 16 tokens recomputed on a random tower
    assert cache.stats.partial == 4 and cache.stats.references == 2


def test_a_frame_equal_to_the_reference_gives_the_reference_output() -> None:
    vit = tiny_vit()
    cache = ViTFeatureCache(vit, ViTCacheConfig(interval=4, ratio=0.25, skip_threshold=0.0, auto_off=False))
    frame = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        first = cache(frame)
        second = cache(frame.clone())
    assert cache.stats.partial == 1
    torch.testing.assert_close(second, first, rtol=1e-5, atol=1e-5)


def test_references_every_interval_frames_and_recompute_fraction() -> None:
    vit = tiny_vit()
    cache = ViTFeatureCache(vit, ViTCacheConfig(interval=3, ratio=0.25, skip_threshold=0.0, auto_off=False))
    with torch.no_grad():
        for frame in _stream(7):
            cache(frame[None])
    stats = cache.stats
    assert (stats.frames, stats.references, stats.partial) == (7, 3, 4)  # references at 0, 3, 6
    T, layers = 16, 2
    assert stats.token_layers == 7 * T * layers
    assert stats.token_layers_recomputed == (3 * T + 4 * int(T * 0.25)) * layers
    assert stats.token_reuse_rate == pytest.approx(1 - (3 * 16 + 4 * 4) / (7 * 16))
    assert set(stats.as_dict()) == {"frames", "frame_skip_rate", "reference_rate", "plain_rate", "token_reuse_rate"}


def test_moving_object_keeps_high_fidelity() -> None:
    vit = tiny_vit()
    cache = ViTFeatureCache(vit, ViTCacheConfig(interval=4, ratio=0.25, skip_threshold=0.0, auto_off=False))
    with torch.no_grad():
        for frame in _stream(8):
            x = frame[None]
            assert F.cosine_similarity(cache(x), vit(x), dim=-1).min() > 0.98


def test_the_tokens_that_moved_are_the_ones_recomputed() -> None:
    """With r covering the moving square, the cached output equals the full one closely everywhere."""
    vit = tiny_vit()
    video = moving_square(3, 32, step=8, square=8)  # the square covers 1-4 patches of 16
    cache = ViTFeatureCache(vit, ViTCacheConfig(interval=8, ratio=0.5, skip_threshold=0.0, auto_off=False))
    with torch.no_grad():
        cache(video[0:1])
        out = cache(video[1:2])
        torch.testing.assert_close(out, vit(video[1:2]), rtol=0, atol=0.05)


def test_static_frames_are_skipped_whole() -> None:
    vit = tiny_vit()
    cache = ViTFeatureCache(vit, ViTCacheConfig(skip_threshold=0.01, auto_off=False))
    frame = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        first = cache(frame)
        again = cache(frame + 1e-5)
    assert again is first
    assert cache.stats.skipped == 1 and cache.stats.frame_skip_rate == 0.5
    cache.reset()
    assert cache.stats.frames == 0


def test_batch_change_starts_a_new_reference() -> None:
    vit = tiny_vit()
    cache = ViTFeatureCache(vit, ViTCacheConfig(interval=4, ratio=0.25, skip_threshold=0.0, auto_off=False))
    with torch.no_grad():
        cache(torch.rand(1, 3, 32, 32))
        cache(torch.rand(2, 3, 32, 32))
    assert cache.stats.references == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"interval": 0}, "interval"), ({"ratio": 0.0}, "ratio"), ({"ratio": 1.5}, "ratio"), ({"skip_threshold": -1}, "skip"),
     ({"calibration_frames": 0}, "calibration_frames")],
)
def test_config_is_validated(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ViTCacheConfig(**kwargs)  # type: ignore[arg-type]


def test_unknown_model_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="SigLIP or CLIP"):
        ViTFeatureCache(torch.nn.Linear(2, 2))
