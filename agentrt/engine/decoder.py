"""A small causal decoder (nanoGPT-shaped, rotary positions) with an explicit KV cache.

Read bottom-up: rotary -> attention -> MLP -> block -> config -> model.
``Decoder.forward`` takes token ids or embeddings (image tokens go in as
embeddings), explicit positions, and a ``KVCache`` that it appends to. Rotary
positions (not a learned table) because a stream has no length limit and the
streaming window re-numbers kept rows by rotating their keys (``streaming.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from agentrt.engine.kv_cache import KVCache
from agentrt.errors import ConfigError, ModelError

__all__ = ["DecoderConfig", "Decoder", "Block", "rope_rotate", "rotate_with"]


def rope_rotate(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate x [B, H, T, D] to positions [T] or [B, T] (rotate-half form).

    Rotations compose: rotating by p then by d equals rotating by p + d, which
    is how kept cache rows are moved to new positions without recomputing them.
    """
    D = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, device=x.device, dtype=torch.float32) / D))  # [D/2]
    return rotate_with(x, positions, inv_freq)


def rotate_with(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """``rope_rotate`` with given inverse frequencies [D/2] (a Llama model's ``rotary_emb.inv_freq``)."""
    D = x.shape[-1]
    angles = positions.to(device=x.device, dtype=torch.float32)[..., None] * inv_freq.to(x.device).float()
    if angles.dim() == 3:
        angles = angles[:, None]  # [B, 1, T, D/2], broadcast over heads
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1).to(x.dtype)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1).to(x.dtype)
    half = D // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, theta: float) -> None:
        super().__init__()
        self.heads = heads
        self.theta = theta
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None, layer: int
    ) -> torch.Tensor:
        B, T, C = x.shape  # batch, new tokens, width
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)  # [B, H, T, D]
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        q = rope_rotate(q, positions, self.theta)
        k = rope_rotate(k, positions, self.theta)
        past = 0
        if cache is not None:
            past = cache.layer_length(layer)
            k, v = cache.append(layer, k, v)  # [B, H, past + T, D]
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
        elif T == 1:
            y = F.scaled_dot_product_attention(q, k, v)  # one new row sees every cached row
        else:
            # new row i sits at cache row past + i and sees rows 0 .. past + i
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, hidden, bias=False)
        self.proj = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, theta: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, theta)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width, hidden)

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None, layer: int
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), positions, cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


@dataclass
class DecoderConfig:
    vocab_size: int = 512
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    rope_theta: float = 10_000.0
    tie_embeddings: bool = True  # the nanoGPT choice: the output head shares the token table

    def __post_init__(self) -> None:
        for name in ("vocab_size", "width", "depth", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"DecoderConfig.{name}: expected a positive int, got {value!r}")
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ConfigError(
                f"DecoderConfig: width / heads must be an even int (rotary pairs), "
                f"given width={self.width}, heads={self.heads}"
            )
        if self.mlp_ratio <= 0 or self.rope_theta <= 0:
            raise ConfigError(
                f"DecoderConfig: expected mlp_ratio > 0 and rope_theta > 0, got {self.mlp_ratio}, {self.rope_theta}"
            )


class Decoder(nn.Module):
    """ids [B, T] (or embeddings [B, T, C]) -> logits [B, T, V], appending to an optional KVCache."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        hidden = int(round(c.width * c.mlp_ratio))
        self.wte = nn.Embedding(c.vocab_size, c.width)
        self.blocks = nn.ModuleList(Block(c.width, c.heads, hidden, c.rope_theta) for _ in range(c.depth))
        self.ln_f = nn.LayerNorm(c.width)
        self.lm_head = nn.Linear(c.width, c.vocab_size, bias=False)
        self.apply(self._init)
        if c.tie_embeddings:
            self.lm_head.weight = self.wte.weight

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def new_cache(self) -> KVCache:
        return KVCache(self.config.depth)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.wte(ids)

    def forward(
        self,
        ids: torch.Tensor | None = None,
        *,
        embeds: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Positions default to the next rows of the cache (0.. without one)."""
        if (ids is None) == (embeds is None):
            raise ModelError("Decoder.forward: give exactly one of ids or embeds")
        x = self.wte(ids) if ids is not None else embeds
        assert x is not None
        if x.dim() != 3 or x.shape[-1] != self.config.width:
            raise ModelError(
                f"Decoder.forward: expected [B, T, {self.config.width}] inputs, got {tuple(x.shape)}"
            )
        T = x.shape[1]
        if positions is None:
            start = cache.length if cache is not None else 0
            positions = torch.arange(start, start + T, device=x.device)
        for layer, block in enumerate(self.blocks):
            x = block(x, positions, cache, layer)
        return self.lm_head(self.ln_f(x))
