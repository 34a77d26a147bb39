"""A small causal decoder (nanoGPT-shaped, rotary positions) with an explicit KV cache.

Read bottom-up: rotary -> attention -> MLP -> block -> config -> model.
``Decoder.forward`` takes token ids or embeddings (image tokens go in as
embeddings), explicit positions, and a ``KVCache`` that it appends to. Rotary
positions (not a learned table) because a stream has no length limit and the
streaming window re-numbers kept rows by rotating their keys (``streaming.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from agentrt.engine.kv_cache import KVCache
from agentrt.engine.static_cache import StaticKVCache
from agentrt.errors import ConfigError, ModelError

__all__ = ["DecoderConfig", "Decoder", "Block", "rope_rotate", "rotate_with", "rotary_tables", "rotate_halves"]


def rope_rotate(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate x [B, H, T, D] to positions [T] or [B, T] (rotate-half form).

    Rotations compose: rotating by p then by d equals rotating by p + d, which
    is how kept cache rows are moved to new positions without recomputing them.
    """
    return rotate_with(x, positions, rope_inv_freq(x.shape[-1], theta, x.device))


def rope_inv_freq(head_dim: int, theta: float, device: torch.device) -> torch.Tensor:
    """The rotary inverse frequencies [D/2], float32."""
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))


def rotary_tables(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sign-folded sin [..., T, D] for positions [..., T]: what ``rotate_halves`` multiplies by.
    Made once per forward and shared by every layer, for queries and keys alike."""
    angles = positions.to(device=inv_freq.device, dtype=torch.float32)[..., None] * inv_freq.float()
    c, s = angles.cos(), angles.sin()
    return torch.cat([c, c], dim=-1).to(dtype), torch.cat([-s, s], dim=-1).to(dtype)


def rotate_halves(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [..., D] rotated by tables broadcasting to it: x cos + (-x2, x1) sin, written as the halves
    swapped times the sign-folded sin ((-x2) s == x2 (-s) exactly), one copy fewer than negate + cat."""
    D = x.shape[-1]
    return x * cos + x.unflatten(-1, (2, D // 2)).flip(-2).flatten(-2) * sin


def rotate_with(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """``rope_rotate`` with given inverse frequencies [D/2] (a Llama model's ``rotary_emb.inv_freq``)."""
    cos, sin = rotary_tables(positions.to(x.device), inv_freq.to(x.device), x.dtype)
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]  # [B, 1, T, D], broadcast over heads
    return rotate_halves(x, cos, sin)


class Attend(NamedTuple):
    """What every layer of one forward shares: rotary tables, the attention mask, the cache rows written."""

    cos: torch.Tensor  # [T, 1, 1, D] or [B, T, 1, 1, D], broadcast over (q|k, heads)
    sin: torch.Tensor
    mask: torch.Tensor | None  # [T, keys] bool, True = may attend
    is_causal: bool
    rows: torch.Tensor | None  # a static-shape pass: the StaticKVCache rows written [T]


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, theta: float) -> None:
        super().__init__()
        self.heads = heads
        self.theta = theta  # the forward's tables are the decoder's (Attend); parts reused alone read it
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor, attend: Attend, cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, C = x.shape  # batch, new tokens, width
        qkv = self.qkv(x).view(B, T, 3, self.heads, C // self.heads)
        qk = rotate_halves(qkv[:, :, :2], attend.cos, attend.sin)  # queries and keys in one rotation
        q, k, v = qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)  # [B, H, T, D]
        if attend.rows is not None:
            assert isinstance(cache, StaticKVCache)
            k, v = cache.write(layer, attend.rows, k, v)  # [B, H, max_length, D]
        elif cache is not None:
            k, v = cache.append(layer, k, v)  # [B, H, past + T, D]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attend.mask, is_causal=attend.is_causal)
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

    def forward(self, x: torch.Tensor, attend: Attend, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), attend, cache, layer)
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
        self._inv_freqs: dict[torch.device, torch.Tensor] = {}

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def new_cache(self, max_length: int | None = None) -> KVCache:
        """A growing ``KVCache``, or with ``max_length`` a ``StaticKVCache`` allocated once, on the model's
        device and in its dtype."""
        if max_length is None:
            return KVCache(self.config.depth)
        c, weight = self.config, self.wte.weight
        return StaticKVCache(c.depth, heads=c.heads, head_dim=c.width // c.heads, max_length=max_length,
                             device=weight.device, dtype=weight.dtype)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.wte(ids)

    def forward(
        self,
        ids: torch.Tensor | None = None,
        *,
        embeds: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: KVCache | None = None,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Positions default to the next rows of the cache (0.. without one).

        ``rows`` [T] (a device tensor) makes this a static-shape pass over a ``StaticKVCache``: the new
        rows are written there, every query attends over the whole buffer under a causal mask, and the
        cache's ``length`` is left for the caller to set. Nothing in it depends on host values, so the
        pass can be captured once and replayed (``agentrt.engine.graphs``).
        """
        if (ids is None) == (embeds is None):
            raise ModelError("Decoder.forward: give exactly one of ids or embeds")
        x = self.wte(ids) if ids is not None else embeds
        assert x is not None
        if x.dim() != 3 or x.shape[-1] != self.config.width:
            raise ModelError(
                f"Decoder.forward: expected [B, T, {self.config.width}] inputs, got {tuple(x.shape)}"
            )
        T = x.shape[1]
        past = cache.length if cache is not None else 0
        if positions is None:
            positions = torch.arange(past, past + T, device=x.device)
        attend = self._attend(x, positions, cache, rows, past)
        for layer, block in enumerate(self.blocks):
            x = block(x, attend, cache, layer)
        return self.lm_head(self.ln_f(x))

    def _attend(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None,
                rows: torch.Tensor | None, past: int) -> Attend:
        """The per-forward work, done once rather than per layer: rotary tables and the mask."""
        T = x.shape[1]
        cos, sin = rotary_tables(positions, self._inv_freq(x.device), x.dtype)
        cos, sin = cos[..., None, None, :], sin[..., None, None, :]  # [(B,) T, 1, 1, D]
        if rows is not None:
            if not isinstance(cache, StaticKVCache):
                raise ModelError("Decoder.forward: rows= is for a static-shape pass over a StaticKVCache")
            return Attend(cos, sin, cache.row_mask(rows), False, rows)
        if past == 0 or T == 1:  # a fresh causal block, or one new row that sees every cached row
            return Attend(cos, sin, None, past == 0 and T > 1, None)
        # new row i sits at cache row past + i and sees rows 0 .. past + i
        mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        return Attend(cos, sin, mask, False, None)

    def _inv_freq(self, device: torch.device) -> torch.Tensor:
        """Rotary inverse frequencies, kept in float32 per device (a buffer would follow ``.to(bfloat16)``)."""
        table = self._inv_freqs.get(device)
        if table is None:
            c = self.config
            table = self._inv_freqs[device] = rope_inv_freq(c.width // c.heads, c.rope_theta, device)
        return table
