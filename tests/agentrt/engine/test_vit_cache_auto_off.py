"""The ViT cache's auto-off (it times itself against the plain forward at warm-up) and its exact cases.

Timings come from a fake clock that the encoder's MLPs advance: a call over all T tokens (the plain
forward, a reference frame) costs one amount, a call over the n recomputed tokens (a partial frame)
another. So the tests say what a fast and a slow device would decide, whatever this machine does.
"""

from __future__ import annotations

import logging

import pytest
import torch

from agentrt.engine import ViT, ViTCacheConfig, ViTFeatureCache
from agentrt.engine.vit_cache import _full_layer, _partial_layer, _plain_layer
from agentrt.engine.vit_calibration import estimate_calibration
from tests.agentrt.engine._models import moving_square, tiny_vit

T = 16  # tokens of tiny_vit: 32² pixels, patch 8


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _clocked(vit: ViT, full_s: float, partial_s: float) -> _FakeClock:
    """A clock each MLP call advances: by full_s over all T tokens, by partial_s over fewer."""
    clock = _FakeClock()

    def advance(module: torch.nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        clock.now += full_s if args[0].shape[1] == T else partial_s

    for layer in vit.layers:
        layer.mlp.register_forward_hook(advance)
    return clock


def _frames(n: int) -> list[torch.Tensor]:
    return [frame[None] for frame in moving_square(n, 32, step=3)]


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agentrt.engine.vit_cache"]


def test_switches_itself_off_where_slower_says_so_once_and_is_then_the_plain_forward(
    caplog: pytest.LogCaptureFixture,
) -> None:
    vit = tiny_vit()
    clock = _clocked(vit, full_s=0.001, partial_s=0.003)  # a partial frame 3x a full one: launch-bound
    cache = ViTFeatureCache(vit, ViTCacheConfig(interval=4, ratio=0.25, calibration_frames=8), clock=clock)
    caplog.set_level(logging.INFO)
    frames = _frames(20)
    with torch.no_grad():
        for i, x in enumerate(frames):
            out = cache(x)
            assert cache.enabled is (None if i < 8 else False)  # one warm-up frame, 8 timed, then decided
            if i > 8:
                assert torch.equal(out, vit(x))  # off: exactly the plain forward
    calibration = cache.calibration
    assert calibration is not None and calibration.frames == 8
    assert calibration.plain_ms == pytest.approx(2.0) and calibration.partial_ms == pytest.approx(6.0)
    assert calibration.speedup == pytest.approx(2.0 / ((2.0 + 3 * 6.0) / 4))
    assert cache.stats.plain == 11 and cache.stats.references == 3  # frames 0, 4, 8 while calibrating
    switched = [m for m in _messages(caplog) if "switched off" in m]
    assert len(switched) == 1 and "auto_off=False" in switched[0] and "0.40x" in switched[0]


def test_stays_on_where_faster_and_the_decision_survives_reset(caplog: pytest.LogCaptureFixture) -> None:
    vit = tiny_vit()
    clock = _clocked(vit, full_s=0.004, partial_s=0.001)
    cache = ViTFeatureCache(vit, ViTCacheConfig(interval=4, ratio=0.25, calibration_frames=4), clock=clock)
    caplog.set_level(logging.INFO)
    with torch.no_grad():
        for x in _frames(12):
            cache(x)
        assert cache.enabled is True and cache.calibration is not None
        assert cache.calibration.speedup == pytest.approx(8.0 / ((8.0 + 3 * 2.0) / 4))
        cache.reset()  # a new stream: same hardware, same decision, no second calibration
        for x in _frames(5):
            cache(x)
    assert cache.enabled is True and cache.stats.plain == 0 and cache.stats.partial == 3
    messages = _messages(caplog)
    assert len(messages) == 1 and "kept on" in messages[0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_auto_off_false_never_times_itself() -> None:
    vit = tiny_vit()
    clock = _clocked(vit, full_s=0.001, partial_s=1.0)
    cache = ViTFeatureCache(vit, ViTCacheConfig(ratio=0.25, auto_off=False), clock=clock)
    with torch.no_grad():
        for x in _frames(12):
            cache(x)
    assert cache.enabled is True and cache.calibration is None and cache.stats.partial > 0


def test_one_setting_is_timed_once_per_process(caplog: pytest.LogCaptureFixture) -> None:
    """The same model built twice (a QA model per episode) decides the same way, without a second timing."""
    first_vit = tiny_vit()
    clock = _clocked(first_vit, full_s=0.001, partial_s=0.003)  # slower: off
    config = ViTCacheConfig(ratio=0.25, calibration_frames=2)
    first = ViTFeatureCache(first_vit, config, clock=clock)
    second_vit = tiny_vit(seed=1)  # no hooks: were it timed, every path would take 0 s and it would stay on
    second = ViTFeatureCache(second_vit, config, clock=clock)
    caplog.set_level(logging.INFO)
    with torch.no_grad():
        for x in _frames(3):
            first(x)
        x = _frames(1)[0]
        out = second(x)
        assert torch.equal(out, second_vit(x))
    assert first.enabled is False and second.enabled is False and second.stats.plain == 1
    assert second.calibration is first.calibration
    assert len(_messages(caplog)) == 1


def test_another_dtype_calibrates_again() -> None:
    vit = tiny_vit()
    clock = _clocked(vit, full_s=0.001, partial_s=0.003)
    cache = ViTFeatureCache(vit, ViTCacheConfig(ratio=0.25, calibration_frames=2), clock=clock)
    with torch.no_grad():
        for x in _frames(3):
            cache(x)
        assert cache.enabled is False
        vit.double()  # the model moved (a dtype here; a device on a GPU machine): the old decision is stale
        out = cache(_frames(1)[0].double())
    assert cache.enabled is None and out.dtype == torch.float64


def test_a_cache_that_reuses_nothing_is_the_plain_forward() -> None:
    """A reference every frame (interval 1) reuses nothing: bitwise equal to ViT.forward."""
    vit = tiny_vit()
    cache = ViTFeatureCache(vit, ViTCacheConfig(interval=1, ratio=0.25, skip_threshold=0.0, auto_off=False))
    with torch.no_grad():
        for x in _frames(5):
            assert torch.equal(cache(x), vit(x))
    assert cache.stats.references == 5 and cache.stats.partial == 0


def test_a_partial_layer_recomputing_every_token_is_the_plain_layer() -> None:
    """n = T through the gather / scatter path. Not bitwise: the rows reach the matrix products permuted
    (topk is unsorted), and a product's rounding may depend on a row's place in its block; 1e-6 here."""
    vit = tiny_vit()
    frames = _frames(2)
    with torch.no_grad():
        x0, x1 = vit.embed(frames[0]), vit.embed(frames[1])
        for layer in vit.layers:
            _, state = _full_layer(layer, x0.clone())
            expected = _plain_layer(layer, x1)
            torch.testing.assert_close(_partial_layer(layer, x1, state, T), expected, rtol=0, atol=1e-6)
            x0, x1 = layer(x0), expected


def test_the_plain_layer_leaves_its_input_alone() -> None:
    vit = tiny_vit()
    x = vit.embed(_frames(1)[0])
    before = x.clone()
    with torch.no_grad():
        _plain_layer(vit.layers[0], x)
        _full_layer(vit.layers[0], x)
    assert torch.equal(x, before)


def test_the_estimate_is_the_steady_state_of_the_medians() -> None:
    samples = [("reference", 10.0, 10.0), ("partial", 2.0, 9.0), ("partial", 4.0, 11.0), ("partial", 3.5, 12.0)]
    found = estimate_calibration("cpu", 4, samples)
    assert (found.plain_ms, found.reference_ms, found.partial_ms) == (10.5, 10.0, 3.5)
    assert found.cached_ms == pytest.approx((10.0 + 3 * 3.5) / 4)
    assert found.as_dict()["speedup"] == pytest.approx(found.speedup) == pytest.approx(10.5 / found.cached_ms)
    # nothing but partial frames timed: a reference is assumed to cost a plain frame
    only_partial = estimate_calibration("cpu", 2, [("partial", 1.0, 4.0)])
    assert only_partial.cached_ms == pytest.approx((4.0 + 1.0) / 2)


def test_switched_off_it_still_skips_unchanged_frames() -> None:
    """Auto-off turns the per-layer reuse off; the whole-frame skip (one comparison) stays."""
    vit = tiny_vit()
    clock = _clocked(vit, full_s=0.001, partial_s=0.003)
    cache = ViTFeatureCache(vit, ViTCacheConfig(ratio=0.25, calibration_frames=2, skip_threshold=0.01), clock=clock)
    with torch.no_grad():
        for x in _frames(3):
            cache(x)
        assert cache.enabled is False
        x = _frames(4)[3]
        out = cache(x)
        assert torch.equal(out, vit(x)) and cache(x + 1e-5) is out
    assert cache.stats.skipped == 1 and cache.stats.plain == 1
