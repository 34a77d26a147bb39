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
   reused, because reusing A alone loses accuracy (REFERENCES §1). The
   recomputed tokens are gathered with one ``gather`` and written back with one
   ``scatter_`` per layer: no Python loop over tokens.

``ratio = 1`` recomputes every token and reproduces the plain forward exactly;
it also turns the frame skip off, since "recompute everything" means exact.

Auto-off (``auto_off``, on by default): whether reuse pays depends on the
hardware. On a CPU a partial frame costs a fraction of a full one; on a GPU a
small model's frame is bound by kernel launches, and a partial frame launches
more kernels than a full one (REFERENCES §11: 0.45-0.65× on an H200). So the
first ``calibration_frames`` frames (after one warm-up frame) run both the cache
and the plain forward, timed on the device they run on; where the cache would
be slower it switches its per-layer reuse off, says so once in the log, and
from then on every encoded frame is exactly the plain forward (the whole-frame
skip, one comparison, stays). One decision per setting per process.

The cache drives anything that looks like a pre-LN CLIP / SigLIP encoder layer
(``layer_norm1``, ``self_attn.{q,k,v,out}_proj``, ``layer_norm2``, ``mlp``):
our ``ViT`` and Hugging Face ``SiglipVisionModel`` / ``CLIPVisionModel`` through
``VisionTower``. ``VisionTower.forward`` is the plain reference beside it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agentrt.engine.device import synchronize
from agentrt.engine.vit import ViT, merge_heads, split_heads
from agentrt.engine.vit_calibration import ViTCacheCalibration, estimate_calibration
from agentrt.errors import ConfigError, ModelError

__all__ = [
    "VisionTower",
    "ViTCacheCalibration",
    "ViTCacheConfig",
    "ViTCacheStats",
    "ViTFeatureCache",
    "as_vision_tower",
]

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
        """The plain forward, the reference the cache is checked against (and what it runs when off)."""
        x = self.embed(pixels)
        for layer in self.layers:
            x = _plain_layer(layer, x)
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
        # computed once per reference frame, used by every partial frame after it
        self.k_unit = F.normalize(self.k, dim=-1)  # reference keys at unit length, for the cosine
        self.am = self.a + self.m  # what a reused token adds to its residual stream


def _attend(attn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Multi-head attention of queries [B, n, C] over keys and values [B, T, C], after out_proj: [B, n, C]."""
    heads = attn.num_heads
    o = F.scaled_dot_product_attention(
        split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), scale=attn.scale
    )  # [B, H, n, D]
    return attn.out_proj(merge_heads(o))


def _plain_layer(layer: Any, x: torch.Tensor) -> torch.Tensor:
    """The plain pre-LN layer: the same ops in the same order as ViTBlock, so the results are bitwise equal.

    ``layer`` is duck-typed: our ViTBlock or a Hugging Face CLIP / SigLIP encoder layer. The
    second residual add is in place on the tensor the first one made (never on the caller's x).
    """
    attn = layer.self_attn
    h = layer.layer_norm1(x)  # [B, T, C]
    x = x + _attend(attn, attn.q_proj(h), attn.k_proj(h), attn.v_proj(h))
    return x.add_(layer.mlp(layer.layer_norm2(x)))


def _full_layer(layer: Any, x: torch.Tensor) -> tuple[torch.Tensor, _LayerState]:
    """``_plain_layer`` keeping what the cache reuses (a reference frame)."""
    attn = layer.self_attn
    h = layer.layer_norm1(x)  # [B, T, C]
    k = attn.k_proj(h)
    v = attn.v_proj(h)
    a = _attend(attn, attn.q_proj(h), k, v)  # [B, T, C]
    x = x + a
    m = layer.mlp(layer.layer_norm2(x))
    return x.add_(m), _LayerState(k=k, v=v, a=a, m=m)


def _partial_layer(layer: Any, x: torch.Tensor, ref: _LayerState, n: int) -> torch.Tensor:
    """Recompute the n tokens whose keys moved most from the reference; reuse the rest.

    Equal to: V = V_ref, A = A_ref, M = M_ref with rows I recomputed; x + A, then
    + M. Written so that only V is materialised whole (attention needs it): the
    reused tokens get x + (A_ref + M_ref) in one add, the recomputed ones are
    scattered over it. All batched: one topk, one gather per input, one scatter
    per output, whatever B and n.
    """
    attn = layer.self_attn
    B, T, C = x.shape  # batch, tokens, width
    h = layer.layer_norm1(x)  # [B, T, C]
    k = attn.k_proj(h)  # fresh keys for every token: they decide what changed, and attention needs them
    # cosine to the reference key; only the ranking matters, and the reference side is pre-normalised
    similarity = (k * ref.k_unit).sum(-1) / k.norm(dim=-1).clamp_min(1e-12)  # [B, T]
    index = similarity.topk(n, dim=1, largest=False, sorted=False).indices  # [B, n] lowest = most changed
    rows = index.unsqueeze(-1).expand(B, n, C)  # a view: gather / scatter index for whole token rows
    h_i = h.gather(1, rows)  # [B, n, C]
    v = ref.v.scatter(1, rows, attn.v_proj(h_i))  # a copy of V_ref with the recomputed rows fresh
    x_i = x.gather(1, rows).add_(_attend(attn, attn.q_proj(h_i), k, v))  # [B, n, C] after attention
    x_i.add_(layer.mlp(layer.layer_norm2(x_i)))  # after the MLP
    return (x + ref.am).scatter_(1, rows, x_i)


@dataclass
class ViTCacheConfig:
    interval: int = 4  # a reference frame every N encoded frames (STC: 2 by default, 4 in its runs)
    ratio: float = 0.1  # fraction r of tokens recomputed per layer; 1.0 = exact plain forward
    skip_threshold: float = 0.002  # whole-frame skip below this relative mean |Δpixel|; 0 disables
    auto_off: bool = True  # time itself against the plain forward at warm-up; switch off where slower
    calibration_frames: int = 8  # frames timed at warm-up (two reference cycles at interval 4)

    def __post_init__(self) -> None:
        if not isinstance(self.interval, int) or self.interval < 1:
            raise ConfigError(f"ViTCacheConfig.interval: expected an int >= 1, got {self.interval!r}")
        if not 0.0 < self.ratio <= 1.0:
            raise ConfigError(f"ViTCacheConfig.ratio: expected 0 < ratio <= 1, got {self.ratio}")
        if self.skip_threshold < 0:
            raise ConfigError(f"ViTCacheConfig.skip_threshold: expected >= 0, got {self.skip_threshold}")
        if not isinstance(self.calibration_frames, int) or self.calibration_frames < 1:
            raise ConfigError(
                f"ViTCacheConfig.calibration_frames: expected an int >= 1, got {self.calibration_frames!r}"
            )


@dataclass
class ViTCacheStats:
    """Counts since the last reset; the rates are what the cache saved."""

    frames: int = 0
    skipped: int = 0  # whole-frame skips
    references: int = 0  # full forwards that became the reference
    partial: int = 0  # frames computed from the reference
    plain: int = 0  # frames run through the plain forward because auto-off switched the cache off
    token_layers: int = 0  # tokens x layers over encoded frames
    token_layers_recomputed: int = 0

    @property
    def frame_skip_rate(self) -> float:
        return self.skipped / self.frames if self.frames else 0.0

    @property
    def reference_rate(self) -> float:
        return self.references / self.frames if self.frames else 0.0

    @property
    def plain_rate(self) -> float:
        return self.plain / self.frames if self.frames else 0.0

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
            "plain_rate": self.plain_rate,
            "token_reuse_rate": self.token_reuse_rate,
        }


@dataclass
class _Reference:
    states: list[_LayerState] = field(default_factory=list)


# auto-off decisions made in this process, per setting (see ViTFeatureCache._follow)
_DECIDED: dict[tuple[Any, ...], ViTCacheCalibration] = {}


class ViTFeatureCache:
    """Encode a stream one frame (or one batch of parallel streams) at a time.

    >>> cache = ViTFeatureCache(vit, ViTCacheConfig(interval=4, ratio=0.1))
    >>> for frame in frames:            # [B, 3, S, S]
    ...     tokens = cache(frame)       # [B, T, C], close to vit(frame)
    >>> cache.stats.token_reuse_rate
    >>> cache.enabled, cache.calibration  # after warm-up: on or off here, and what was measured

    ``clock`` (seconds) is for tests; the device is synchronised around every reading.
    """

    def __init__(
        self,
        model: nn.Module | VisionTower,
        config: ViTCacheConfig | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.tower = as_vision_tower(model)
        self.config = config or ViTCacheConfig()
        self.stats = ViTCacheStats()
        self.calibration: ViTCacheCalibration | None = None
        self._clock = clock
        self._reference: _Reference | None = None
        self._since_reference = 0
        self._last_pixels: torch.Tensor | None = None
        self._last_output: torch.Tensor | None = None
        self._samples: list[tuple[str, float, float]] = []  # (kind, cached ms, plain ms) while calibrating
        self._warmed = False
        # exact (ratio 1) is the plain forward already: nothing to decide
        self._auto = self.config.auto_off and self.config.ratio < 1.0
        self._setting: tuple[Any, ...] | None = None  # what the current decision is about
        self.enabled: bool | None = None if self._auto else True  # None: still calibrating

    def reset(self) -> None:
        """Forget the reference (a new stream, a scene cut) and zero the statistics.

        The auto-off decision stays: it is about the hardware, not the stream.
        """
        self._reference = None
        self._since_reference = 0
        self._last_pixels = None
        self._last_output = None
        self.stats = ViTCacheStats()

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.stats.frames += 1
        if self._auto:
            self._follow(pixels)
        # the whole-frame skip costs one comparison: it stays when auto-off turns the per-layer reuse off
        if self.config.ratio < 1.0 and self._should_skip(pixels):
            self.stats.skipped += 1
            assert self._last_output is not None
            return self._last_output
        if self.enabled is None:
            out = self._calibrate_step(pixels)
        else:
            out = self._encode(pixels, reuse=self.enabled)[0]
            if not self.enabled:
                self.stats.plain += 1
        self._last_pixels = pixels
        self._last_output = out
        return out

    def _encode(self, pixels: torch.Tensor, *, reuse: bool) -> tuple[torch.Tensor, str]:
        """One frame through the layers -> (output, "plain" | "reference" | "partial").

        ``reuse=False``, or r = 1: the plain forward, op for op.
        """
        cfg = self.config
        x = self.tower.embed(pixels)  # [B, T, C]
        T = x.shape[1]
        n = int(T * cfg.ratio)  # floor, as in STC
        ref = self._reference
        if not reuse or n >= T:
            for layer in self.tower.layers:
                x = _plain_layer(layer, x)
            kind, recomputed = "plain", T
        elif ref is None or self._since_reference >= cfg.interval or ref.states[0].k.shape != x.shape:
            states = []
            for layer in self.tower.layers:
                x, state = _full_layer(layer, x)
                states.append(state)
            self._reference = _Reference(states)
            self._since_reference = 1
            self.stats.references += 1
            kind, recomputed = "reference", T
        else:
            for layer, state in zip(self.tower.layers, ref.states, strict=True):
                x = _partial_layer(layer, x, state, n) if n > 0 else x + state.am
            self._since_reference += 1
            self.stats.partial += 1
            kind, recomputed = "partial", n
        self._count(T, recomputed)
        return self.tower.finish(x), kind

    def _count(self, tokens: int, recomputed: int) -> None:
        layers = len(self.tower.layers)
        self.stats.token_layers += tokens * layers
        self.stats.token_layers_recomputed += recomputed * layers

    def _follow(self, pixels: torch.Tensor) -> None:
        """Take the decision made for this setting in this process, or start timing for it.

        A setting is the device, dtypes and shapes, the cache's settings and the clock: the same model
        built twice (a QA model per episode) is timed once, and decides the same way both times; a
        model moved to another device or dtype is timed again.
        """
        layer: Any = self.tower.layers[0] if self.tower.layers else None  # duck-typed, as in _plain_layer
        first: torch.Tensor = layer.self_attn.q_proj.weight if layer is not None else pixels
        cfg = self.config
        setting = (str(pixels.device), pixels.dtype, tuple(pixels.shape), len(self.tower.layers),
                   tuple(first.shape), first.dtype, cfg.interval, cfg.ratio, cfg.calibration_frames, self._clock)
        if setting == self._setting:
            return
        if self._setting is not None:  # moved: the reference and the last frame live on the old setting
            self._reference = self._last_pixels = self._last_output = None
        self._setting = setting
        self.calibration = _DECIDED.get(setting)
        self.enabled = None if self.calibration is None else self.calibration.speedup >= 1.0
        self._samples, self._warmed = [], False

    def _calibrate_step(self, pixels: torch.Tensor) -> torch.Tensor:
        """Run the cache and the plain forward on one frame, timed; decide after ``calibration_frames``."""

        def cached() -> tuple[torch.Tensor, str]:
            return self._encode(pixels, reuse=True)

        def plain() -> torch.Tensor:
            return self.tower.forward(pixels)

        # alternate which path runs first, so neither always finds the other's data in the caches
        if len(self._samples) % 2:
            plain_ms = self._timed(plain, pixels.device)[1]
            (out, kind), cached_ms = self._timed(cached, pixels.device)
        else:
            (out, kind), cached_ms = self._timed(cached, pixels.device)
            plain_ms = self._timed(plain, pixels.device)[1]
        if not self._warmed:
            self._warmed = True  # the first frame pays both paths' first-call costs: not timed
        else:
            self._samples.append((kind, cached_ms, plain_ms))
        if len(self._samples) >= self.config.calibration_frames:
            self._decide(pixels.device)
        return out

    def _timed(self, fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
        synchronize(device)  # queued kernels from before are not this call's
        start = self._clock()
        out = fn()
        synchronize(device)
        return out, (self._clock() - start) * 1e3

    def _decide(self, device: torch.device) -> None:
        found = estimate_calibration(str(device), self.config.interval, self._samples)
        assert self._setting is not None
        _DECIDED[self._setting] = found
        self.calibration = found
        self._samples = []
        self.enabled = found.speedup >= 1.0
        what = f"{found.speedup:.2f}x the plain forward on {device} over {found.frames} warm-up frames"
        if self.enabled:
            log.info("ViT feature cache: %s; kept on", what)
            return
        self._reference = None  # the plain forward from here: free the reference's tensors
        log.warning(
            "ViT feature cache: %s, slower; per-layer reuse switched off, every encoded frame runs the "
            "plain forward from here (ViTCacheConfig(auto_off=False) keeps it on)",
            what,
        )

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
