"""ViT feature cache after STC-Cacher: reuse per-layer work across the frames of a stream.

Three levels, cheapest first:

1. Whole-frame skip: a frame that barely changed from the last encoded frame
   (mean |Δpixel| relative to mean |pixel| below ``skip_threshold``) returns the
   last output unchanged.
2. Reference frame: every ``interval`` encoded frames (and the first) runs the
   plain forward and keeps, per layer, K, V, the attention output A (after
   out_proj) and the MLP output M.
3. Other frames, per layer: keys for all T tokens; the ``floor(T * ratio)``
   tokens whose key moved most from the reference (lowest cosine at the same
   position) get fresh V, attention (their queries against all fresh keys) and
   MLP; every other token reuses the reference's V, A and M. Both A and M are
   reused, because reusing A alone loses accuracy (REFERENCES §1).

``ratio = 1`` recomputes every token and reproduces the plain forward exactly;
it also turns the frame skip off, since "recompute everything" means exact.

The cache drives anything that looks like a pre-LN CLIP / SigLIP encoder layer
(``layer_norm1``, ``self_attn.{q,k,v,out}_proj``, ``layer_norm2``, ``mlp``):
our ``ViT`` and Hugging Face ``SiglipVisionModel`` / ``CLIPVisionModel`` through
``VisionTower``. ``VisionTower.forward`` is the plain reference beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agentrt.engine.vit import ViT, merge_heads, split_heads
from agentrt.errors import ConfigError, ModelError

__all__ = ["VisionTower", "ViTCacheConfig", "ViTCacheStats", "ViTFeatureCache", "as_vision_tower"]

log = logging.getLogger(__name__)


@dataclass
class VisionTower:
    """A pre-LN ViT split into the three parts the cache needs.

    ``embed``: pixels -> tokens entering the first layer (any pre-norm included);
    ``layers``: the encoder layers; ``finish``: last layer's output -> the
    tower's ``last_hidden_state``.
    """

    embed: Callable[[torch.Tensor], torch.Tensor]
    layers: Sequence[nn.Module]
    finish: Callable[[torch.Tensor], torch.Tensor]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """The plain forward, the reference the cache is checked against."""
        x = self.embed(pixels)
        for layer in self.layers:
            x = _full_layer(layer, x)[0]
        return self.finish(x)


def as_vision_tower(model: nn.Module | VisionTower) -> VisionTower:
    """Our ViT, a Hugging Face SiglipVisionModel / CLIPVisionModel (or their inner transformer)."""
    if isinstance(model, VisionTower):
        return model
    if isinstance(model, ViT):
        return VisionTower(embed=model.embed, layers=list(model.layers), finish=model.finish)
    from agentrt.engine.hf import hf_vision_tower

    return hf_vision_tower(model)


@dataclass
class _LayerState:
    k: torch.Tensor  # [B, T, C] keys (before the head split)
    v: torch.Tensor  # [B, T, C]
    a: torch.Tensor  # [B, T, C] attention output after out_proj
    m: torch.Tensor  # [B, T, C] MLP output

    def __post_init__(self) -> None:
        self.k_unit = F.normalize(self.k, dim=-1)  # reference keys at unit length, for the cosine
        self.am = self.a + self.m  # what a reused token adds to its residual stream


def _full_layer(layer: Any, x: torch.Tensor) -> tuple[torch.Tensor, _LayerState]:
    """The plain pre-LN layer, keeping what the cache reuses. Same ops, same order as ViTBlock.

    ``layer`` is duck-typed: our ViTBlock or a Hugging Face CLIP / SigLIP encoder layer.
    """
    attn = layer.self_attn
    heads = attn.num_heads
    h = layer.layer_norm1(x)  # [B, T, C]
    q = attn.q_proj(h)
    k = attn.k_proj(h)
    v = attn.v_proj(h)
    o = F.scaled_dot_product_attention(
        split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), scale=attn.scale
    )
    a = attn.out_proj(merge_heads(o))  # [B, T, C]
    x = x + a
    m = layer.mlp(layer.layer_norm2(x))
    x = x + m
    return x, _LayerState(k=k, v=v, a=a, m=m)


def _flat_index(index: torch.Tensor, T: int) -> torch.Tensor:
    """index [B, n] of tokens per sequence -> [B * n] rows of the flattened [B * T, C] tensor."""
    B = index.shape[0]
    return (index + torch.arange(B, device=index.device)[:, None] * T).reshape(-1)


def _gather(x: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """x [B, T, C], flat rows [B * n] -> [B, n, C]."""
    B, T, C = x.shape  # batch, tokens, width
    return x.reshape(B * T, C).index_select(0, rows).view(B, n, C)


def _scatter(base: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A copy of base [B, T, C] with values [B, n, C] written at flat rows [B * n]."""
    B, T, C = base.shape  # batch, tokens, width
    return base.reshape(B * T, C).index_copy(0, rows, values.reshape(-1, C)).view(B, T, C)


def _partial_layer(layer: Any, x: torch.Tensor, ref: _LayerState, n: int) -> torch.Tensor:
    """Recompute the n tokens whose keys moved most from the reference; reuse the rest.

    Equal to: V = V_ref, A = A_ref, M = M_ref with rows I recomputed; x + A, then
    + M. Written so that only V is materialised whole (attention needs it): the
    reused tokens get x + (A_ref + M_ref) in one add, the recomputed ones are
    overwritten.
    """
    attn = layer.self_attn
    heads = attn.num_heads
    B, T, C = x.shape  # batch, tokens, width
    h = layer.layer_norm1(x)  # [B, T, C]
    k = attn.k_proj(h)  # fresh keys for every token: they decide what changed, and attention needs them
    # cosine to the reference key; only the ranking matters, and the reference side is pre-normalised
    similarity = (k * ref.k_unit).sum(-1) / k.norm(dim=-1).clamp_min(1e-12)  # [B, T]
    index = similarity.topk(n, dim=1, largest=False, sorted=False).indices  # [B, n] lowest = most changed
    rows = _flat_index(index, T)  # [B * n]
    h_i = _gather(h, rows, n)  # [B, n, C]
    v = _scatter(ref.v, rows, attn.v_proj(h_i))
    q_i = attn.q_proj(h_i)
    o_i = F.scaled_dot_product_attention(
        split_heads(q_i, heads), split_heads(k, heads), split_heads(v, heads), scale=attn.scale
    )  # [B, H, n, D]
    x_i = _gather(x, rows, n) + attn.out_proj(merge_heads(o_i))  # [B, n, C] after attention
    x_i = x_i + layer.mlp(layer.layer_norm2(x_i))  # after the MLP
    return _scatter(x + ref.am, rows, x_i)


@dataclass
class ViTCacheConfig:
    interval: int = 4  # a reference frame every N encoded frames (STC: 2 by default, 4 in its runs)
    ratio: float = 0.1  # fraction r of tokens recomputed per layer; 1.0 = exact plain forward
    skip_threshold: float = 0.002  # whole-frame skip below this relative mean |Δpixel|; 0 disables

    def __post_init__(self) -> None:
        if not isinstance(self.interval, int) or self.interval < 1:
            raise ConfigError(f"ViTCacheConfig.interval: expected an int >= 1, got {self.interval!r}")
        if not 0.0 < self.ratio <= 1.0:
            raise ConfigError(f"ViTCacheConfig.ratio: expected 0 < ratio <= 1, got {self.ratio}")
        if self.skip_threshold < 0:
            raise ConfigError(f"ViTCacheConfig.skip_threshold: expected >= 0, got {self.skip_threshold}")


@dataclass
class ViTCacheStats:
    """Counts since the last reset; the rates are what the cache saved."""

    frames: int = 0
    skipped: int = 0  # whole-frame skips
    references: int = 0  # full forwards that became the reference
    partial: int = 0  # frames computed from the reference
    token_layers: int = 0  # tokens x layers over encoded frames
    token_layers_recomputed: int = 0

    @property
    def frame_skip_rate(self) -> float:
        return self.skipped / self.frames if self.frames else 0.0

    @property
    def reference_rate(self) -> float:
        return self.references / self.frames if self.frames else 0.0

    @property
    def token_reuse_rate(self) -> float:
        """Fraction of token-layer computations reused, over encoded (not skipped) frames."""
        if not self.token_layers:
            return 0.0
        return 1.0 - self.token_layers_recomputed / self.token_layers

    def as_dict(self) -> dict[str, float]:
        return {
            "frames": float(self.frames),
            "frame_skip_rate": self.frame_skip_rate,
            "reference_rate": self.reference_rate,
            "token_reuse_rate": self.token_reuse_rate,
        }


@dataclass
class _Reference:
    states: list[_LayerState] = field(default_factory=list)


class ViTFeatureCache:
    """Encode a stream one frame (or one batch of parallel streams) at a time.

    >>> cache = ViTFeatureCache(vit, ViTCacheConfig(interval=4, ratio=0.1))
    >>> for frame in frames:            # [B, 3, S, S]
    ...     tokens = cache(frame)       # [B, T, C], close to vit(frame)
    >>> cache.stats.token_reuse_rate
    """

    def __init__(self, model: nn.Module | VisionTower, config: ViTCacheConfig | None = None) -> None:
        self.tower = as_vision_tower(model)
        self.config = config or ViTCacheConfig()
        self.stats = ViTCacheStats()
        self._reference: _Reference | None = None
        self._since_reference = 0
        self._last_pixels: torch.Tensor | None = None
        self._last_output: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the reference (a new stream, a scene cut) and zero the statistics."""
        self._reference = None
        self._since_reference = 0
        self._last_pixels = None
        self._last_output = None
        self.stats = ViTCacheStats()

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        self.stats.frames += 1
        exact = cfg.ratio >= 1.0
        if not exact and self._should_skip(pixels):
            self.stats.skipped += 1
            assert self._last_output is not None
            return self._last_output
        x = self.tower.embed(pixels)  # [B, T, C]
        T = x.shape[1]
        n = T if exact else int(T * cfg.ratio)  # floor, as in STC
        ref = self._reference
        if exact or ref is None or self._since_reference >= cfg.interval or ref.states[0].k.shape != x.shape:
            states = []
            for layer in self.tower.layers:
                x, state = _full_layer(layer, x)
                states.append(state)
            recomputed = T
            if not exact:
                self._reference = _Reference(states)
                self._since_reference = 1
                self.stats.references += 1
        else:
            for layer, state in zip(self.tower.layers, ref.states, strict=True):
                x = _partial_layer(layer, x, state, n) if n > 0 else x + state.am
            recomputed = n
            self._since_reference += 1
            self.stats.partial += 1
        self.stats.token_layers += T * len(self.tower.layers)
        self.stats.token_layers_recomputed += recomputed * len(self.tower.layers)
        out = self.tower.finish(x)
        self._last_pixels = pixels
        self._last_output = out
        return out

    def _should_skip(self, pixels: torch.Tensor) -> bool:
        last = self._last_pixels
        if self.config.skip_threshold <= 0 or last is None:
            return False
        if last.shape != pixels.shape:
            return False
        if last.device != pixels.device:
            raise ModelError(
                f"ViTFeatureCache: frames moved from {last.device} to {pixels.device}; call reset()"
            )
        change = (pixels - last).abs().mean() / last.abs().mean().clamp_min(1e-12)
        return bool(change < self.config.skip_threshold)
