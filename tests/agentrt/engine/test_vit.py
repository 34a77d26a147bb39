from __future__ import annotations

import pytest
import torch

from agentrt.engine import ViT, ViTConfig, as_vision_tower
from agentrt.errors import ConfigError
from tests.agentrt.engine._models import tiny_vit


def test_output_is_the_patch_grid() -> None:
    vit = tiny_vit()
    out = vit(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, vit.config.grid**2, 32)
    assert vit.config.num_tokens == 16


def test_class_token_adds_one_token() -> None:
    vit = tiny_vit(class_token=True)
    assert vit(torch.randn(1, 3, 32, 32)).shape == (1, 17, 32)


def test_tower_forward_is_the_plain_forward() -> None:
    vit = tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(as_vision_tower(vit).forward(x), vit(x))


def test_vit_s16_default_shape() -> None:
    config = ViTConfig()
    assert (config.grid, config.num_tokens, config.width, config.depth) == (14, 196, 384, 12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 30, "patch_size": 8}, "multiple of patch_size"),
        ({"width": 30, "heads": 4}, "divide by heads"),
        ({"depth": 0}, "depth"),
        ({"mlp_ratio": 0.0}, "mlp_ratio"),
    ],
)
def test_config_names_expected_and_given(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ViTConfig(**kwargs)  # type: ignore[arg-type]


def test_wrong_pixels_shape_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"expected pixels \[B, 3"):
        ViT(ViTConfig.tiny())(torch.randn(1, 1, 64, 64))
