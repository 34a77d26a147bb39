"""Keypoints with heights (``keypoint_height``): a lifted object maps to where it is, not to the floor under
its image; fine-tuning from weights without them starts exactly where those weights were."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from agentrt.errors import ConfigError
from policies.vla.model import Keypoints, NanoVLA, NanoVLAConfig, load_model, pixels, save_model
from policies.vla.train import grow_from, keypoint_loss

TINY = {"image_size": 32, "patch_size": 8, "vit_width": 32, "vit_depth": 1, "vit_heads": 2, "pool": 2,
        "width": 32, "depth": 1, "heads": 2, "chunk_steps": 2}
WORDS = ["put", "the", "red", "cube", "in", "tray"]


def batch(model: NanoVLA, B: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    images = pixels(torch.randint(0, 255, (B, 32, 32, 3), dtype=torch.uint8, generator=g))
    states = torch.tensor([[0.5, 0.1, 0.02, 0.0], [0.45, -0.1, 0.18, 1.0], [0.6, 0.0, 0.1, 1.0]])[:B]
    text = torch.randint(4, 4 + len(WORDS), (B, model.config.text_len), generator=g)
    lo, hi = model.config.action_ids
    actions = torch.randint(lo, hi, (B, model.config.chunk_tokens), generator=g)
    return images, states, text, actions


def test_a_model_grown_with_heights_starts_with_the_same_actions() -> None:
    torch.manual_seed(0)
    flat = NanoVLA(NanoVLAConfig(words=WORDS, **TINY)).eval()
    tall = NanoVLA(NanoVLAConfig(**{**asdict(flat.config), "keypoint_height": True})).eval()
    grown = grow_from(tall, flat.state_dict())
    assert {"grounding.to_table.0.weight", "grounding.token.weight"} <= set(grown)
    assert any(name.startswith("grounding.height.") for name in grown)
    images, states, text, actions = batch(flat)
    with torch.no_grad():
        before, kp_before = flat(images, states, text, actions)
        after, kp_after = tall(images, states, text, actions)
    assert torch.allclose(before, after, atol=1e-6) and torch.allclose(kp_before.xy, kp_after.xy, atol=1e-6)
    assert kp_before.z is None and kp_after.z is not None and kp_after.z.shape == (3, 2, 1)
    # and the new inputs do reach the output once they have weights
    with torch.no_grad():
        tall.grounding.to_table[0].weight[:, 2] = 1.0
        moved, _ = tall(images, states, text, actions)
    assert not torch.allclose(before, moved, atol=1e-4)


def test_grow_from_refuses_changed_sizes() -> None:
    small = NanoVLA(NanoVLAConfig(words=WORDS, **TINY))
    wide = NanoVLA(NanoVLAConfig(words=WORDS, **{**TINY, "width": 48}))
    with pytest.raises(ConfigError, match="--init: .* only new inputs and new parts"):
        grow_from(wide, small.state_dict())


def test_keypoint_loss_counts_the_height_where_the_model_predicts_it() -> None:
    model = NanoVLA(NanoVLAConfig(words=WORDS, keypoint_height=True, **TINY))
    place = torch.tensor([[[0.55, 0.1, 0.15], [0.4, -0.1, 0.0]]])  # a lifted target, the tray on the floor
    xy = model.normalise_position(place[:, :, :2])
    z = model.normalise_position(place)[..., 2:]
    logits = torch.zeros(1, 2, 16 * 16)
    assert float(keypoint_loss(model, Keypoints(xy, logits, z), place)[1]) == pytest.approx(0.0, abs=1e-12)
    on_floor = torch.full_like(z, float(model.normalise_position(torch.zeros(3))[2]))
    off = float(keypoint_loss(model, Keypoints(xy, logits, on_floor), place)[1])
    expected = (0.15 / model.config.state_scale[2]) ** 2 / 3 / 2  # one of three dims wrong, on one of two keypoints
    assert off == pytest.approx(expected, rel=1e-5)


def test_height_weights_round_trip_and_older_weights_load_without(tmp_path: Path) -> None:
    model = NanoVLA(NanoVLAConfig(words=WORDS, keypoint_height=True, **TINY)).eval()
    save_model(model, tmp_path / "h.safetensors", robot="panda")
    loaded, _ = load_model(tmp_path / "h.safetensors")
    assert loaded.config.keypoint_height and loaded.grounding is not None and loaded.grounding.height is not None
    images, states, text, actions = batch(model)
    with torch.no_grad():
        assert torch.equal(model(images, states, text, actions)[0], loaded(images, states, text, actions)[0])
    shipped, _ = load_model(Path(__file__).parents[2] / "policies/weights/nano_vla.safetensors")
    assert shipped.grounding is not None  # weights saved before the field was there read it as False or True as saved
    assert (shipped.grounding.height is None) == (not shipped.config.keypoint_height)


def test_fine_tune_from_weights_adds_heights(tmp_path: Path) -> None:
    from policies.vla.data import CollectConfig, collect
    from policies.vla.train import TrainConfig, train

    data = tmp_path / "data"
    collect(CollectConfig(tasks=("pick_place",), episodes=1, image_size=32, image_every=4, out_dir=str(data)))
    flat = tmp_path / "flat.safetensors"
    train(TrainConfig(data_dir=str(data), out_dir=str(tmp_path / "a"), weights=str(flat), steps=2, batch_size=4, model=TINY))
    tall = tmp_path / "tall.safetensors"
    summary = train(TrainConfig(data_dir=str(data), out_dir=str(tmp_path / "b"), weights=str(tall), steps=2,
                                batch_size=4, init=str(flat), model={"keypoint_height": True}))
    assert summary["steps"] == 2
    model, _ = load_model(tall)
    assert model.config.keypoint_height and model.config.width == TINY["width"]  # the init's sizes, the override on top
