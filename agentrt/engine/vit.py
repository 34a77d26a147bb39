"""A small plain Vision Transformer (pre-LN, like CLIP / SigLIP / timm), the reference forward.

Read bottom-up: attention -> MLP -> block -> config -> model. The module names
follow the Hugging Face CLIP / SigLIP encoder layers (``layer_norm1``,
``self_attn.{q,k,v,out}_proj``, ``layer_norm2``, ``mlp``) on purpose: the feature
cache (``vit_cache.py``) drives our blocks and Hugging Face layers through the
same code, so what it computes for one it computes for the other.

There is no class token by default, so the output tokens form the patch grid
(``grid`` x ``grid``) that slow-fast pooling and pruning work on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from agentrt.errors import ConfigError

__all__ = ["ViTConfig", "ViT", "ViTAttention", "ViTMLP", "ViTBlock", "split_heads", "merge_heads"]


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, C] -> [B, H, T, D]."""
    B, T, C = x.shape  # batch, tokens, width
    return x.view(B, T, heads, C // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, T, D] -> [B, T, C]."""
    B, H, T, D = x.shape  # batch, heads, tokens, head width
    return x.transpose(1, 2).reshape(B, T, H * D)


class ViTAttention(nn.Module):
    """Bidirectional multi-head self-attention with separate q / k / v projections.

    Separate projections (not one fused qkv) because the cache computes keys for
    every token but queries and values only for the recomputed ones.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.num_heads = heads
        self.head_dim = width // heads
        self.scale = self.head_dim**-0.5
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        q = split_heads(self.q_proj(h), self.num_heads)  # [B, H, T, D]
        k = split_heads(self.k_proj(h), self.num_heads)
        v = split_heads(self.v_proj(h), self.num_heads)
        o = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # [B, H, T, D]
        return self.out_proj(merge_heads(o))  # [B, T, C]


class ViTMLP(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class ViTBlock(nn.Module):
    """x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, width: int, heads: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(width, eps=eps)
        self.self_attn = ViTAttention(width, heads)
        self.layer_norm2 = nn.LayerNorm(width, eps=eps)
        self.mlp = ViTMLP(width, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        x = x + self.mlp(self.layer_norm2(x))
        return x


@dataclass
class ViTConfig:
    """Defaults are ViT-S/16 at 224² (196 tokens, width 384, 12 layers, 6 heads)."""

    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    width: int = 384
    depth: int = 12
    heads: int = 6
    mlp_ratio: float = 4.0
    class_token: bool = False  # SigLIP-style: tokens are exactly the patch grid
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "in_channels", "width", "depth", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"ViTConfig.{name}: expected a positive int, got {value!r}")
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"ViTConfig: image_size must be a multiple of patch_size, got {self.image_size} and {self.patch_size}"
            )
        if self.width % self.heads:
            raise ConfigError(
                f"ViTConfig: width must divide by heads, given width={self.width}, heads={self.heads}"
            )
        if self.mlp_ratio <= 0:
            raise ConfigError(f"ViTConfig.mlp_ratio: expected > 0, got {self.mlp_ratio}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return self.grid**2 + int(self.class_token)

    @classmethod
    def tiny(cls) -> ViTConfig:
        """64² input, patch 8 -> an 8x8 grid of 64 tokens; width 128, 4 layers (the nano-model size)."""
        return cls(image_size=64, patch_size=8, width=128, depth=4, heads=4)


class ViT(nn.Module):
    """pixels [B, 3, S, S] -> tokens [B, T, C] (final LayerNorm applied)."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.patch_embedding = nn.Conv2d(
            c.in_channels, c.width, kernel_size=c.patch_size, stride=c.patch_size
        )
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, c.width)) if c.class_token else None
        self.position_embedding = nn.Parameter(torch.zeros(1, c.num_tokens, c.width))
        hidden = int(round(c.width * c.mlp_ratio))
        self.layers = nn.ModuleList(ViTBlock(c.width, c.heads, hidden, c.norm_eps) for _ in range(c.depth))
        self.post_layernorm = nn.LayerNorm(c.width, eps=c.norm_eps)
        self.apply(self._init)
        nn.init.normal_(self.position_embedding, std=0.02)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            nn.init.trunc_normal_(module.weight, std=1.0 / math.sqrt(fan_in))
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, S, S] -> patch tokens plus positions [B, T, C]."""
        if pixels.dim() != 4 or pixels.shape[1] != self.config.in_channels:
            raise ConfigError(
                f"ViT: expected pixels [B, {self.config.in_channels}, H, W], got {tuple(pixels.shape)}"
            )
        x = self.patch_embedding(pixels).flatten(2).transpose(1, 2)  # [B, grid², C]
        if self.class_embedding is not None:
            x = torch.cat([self.class_embedding.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.position_embedding

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return self.post_layernorm(x)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.embed(pixels)
        for layer in self.layers:
            x = layer(x)
        return self.finish(x)
