"""Token pruning after STC-Pruner: keep the k tokens per frame most novel against two anchors.

For features z [F, N, C] (F frames of a chunk, N tokens each, after the
projector and before prefill):

- the spatial anchor a_S(f) is frame f's mean token;
- the temporal anchor a_T is the running mean of every chunk mean seen so far,
  this chunk's included (state kept across calls; ``reset()`` for a new stream);
- scores use the C/2 channels with the lowest variance over the chunk (the
  high-variance channels are where every token differs, so they say little
  about novelty).

Two scores (REFERENCES §2):

- ``"gaussian"`` (STC's released default): similarity
  G(u, a) = sum over alpha of exp(-|û - â|² / (2 alpha)) on L2-normalised
  vectors; score = G(z, a_S) + G(z, a_T); keep the k LOWEST (least similar);
- ``"cosine"`` (the paper's form): S = 0.5 (1 - cos(z, a_T)) + 0.5 (1 - cos(z, a_S));
  keep the k HIGHEST.

Kept tokens stay in their original order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from agentrt.errors import ConfigError, ModelError

__all__ = ["TokenPrunerConfig", "TokenPruner", "PrunedTokens"]

_SCORES = ("gaussian", "cosine")


@dataclass
class TokenPrunerConfig:
    keep_tokens: int = 64  # k per frame (LLaVA-OV in STC: 196 -> 64)
    score: str = "gaussian"
    channel_fraction: float = 0.5  # share of lowest-variance channels the score looks at
    alphas: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0)  # Gaussian kernel bandwidths

    def __post_init__(self) -> None:
        if not isinstance(self.keep_tokens, int) or self.keep_tokens < 1:
            raise ConfigError(
                f"TokenPrunerConfig.keep_tokens: expected an int >= 1, got {self.keep_tokens!r}"
            )
        if self.score not in _SCORES:
            raise ConfigError(f"TokenPrunerConfig.score: expected one of {_SCORES}, got {self.score!r}")
        if not 0.0 < self.channel_fraction <= 1.0:
            raise ConfigError(
                f"TokenPrunerConfig.channel_fraction: expected 0 < fraction <= 1, got {self.channel_fraction}"
            )
        if not self.alphas or any(a <= 0 for a in self.alphas):
            raise ConfigError(f"TokenPrunerConfig.alphas: expected positive bandwidths, got {self.alphas}")


@dataclass
class PrunedTokens:
    tokens: torch.Tensor  # [F, k, C] kept tokens, original order
    indices: torch.Tensor  # [F, k] their positions in the frame
    scores: torch.Tensor  # [F, N] novelty, higher = more novel (both score kinds)


class TokenPruner:
    """Stateful over a stream (the temporal anchor); call once per chunk of frames."""

    def __init__(self, config: TokenPrunerConfig | None = None) -> None:
        self.config = config or TokenPrunerConfig()
        self._anchor_sum: torch.Tensor | None = None  # sum of chunk means, all channels [C]
        self._chunks = 0

    def reset(self) -> None:
        self._anchor_sum = None
        self._chunks = 0

    @torch.no_grad()
    def __call__(self, z: torch.Tensor) -> PrunedTokens:
        if z.dim() == 2:
            z = z[None]
        if z.dim() != 3:
            raise ModelError(f"TokenPruner: expected features [F, N, C], got {tuple(z.shape)}")
        F_, N, C = z.shape  # frames, tokens per frame, channels
        k = min(self.config.keep_tokens, N)
        chunk_mean = z.float().mean(dim=(0, 1))  # [C]
        if self._anchor_sum is None or self._anchor_sum.shape != chunk_mean.shape:
            self._anchor_sum = torch.zeros_like(chunk_mean)
            self._chunks = 0
        self._anchor_sum = self._anchor_sum + chunk_mean
        self._chunks += 1
        novelty = self.novelty(z, self._anchor_sum / self._chunks)  # [F, N]
        index = novelty.topk(k, dim=1).indices.sort(dim=1).values  # [F, k], original order
        tokens = torch.gather(z, 1, index.unsqueeze(-1).expand(-1, -1, C))
        return PrunedTokens(tokens=tokens, indices=index, scores=novelty)

    def novelty(self, z: torch.Tensor, temporal_anchor: torch.Tensor) -> torch.Tensor:
        """Novelty score [F, N] of every token (higher = keep) against both anchors."""
        cfg = self.config
        zf = z.float()
        C = zf.shape[-1]
        n_channels = max(1, int(C * cfg.channel_fraction))
        channels = zf.reshape(-1, C).var(dim=0, correction=0).topk(n_channels, largest=False).indices  # [C']
        u = zf[..., channels]  # [F, N, C']
        a_s = u.mean(dim=1, keepdim=True)  # [F, 1, C'] spatial anchor: the frame's mean token
        a_t = temporal_anchor.to(zf.device)[channels].expand_as(a_s)  # [F, 1, C']
        if cfg.score == "cosine":
            return 0.5 * (1 - F.cosine_similarity(u, a_t, dim=-1)) + 0.5 * (
                1 - F.cosine_similarity(u, a_s, dim=-1)
            )
        return -(self._gaussian(u, a_s) + self._gaussian(u, a_t))

    def _gaussian(self, u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        distance = (F.normalize(u, dim=-1) - F.normalize(a, dim=-1)).pow(2).sum(-1)  # [F, N]
        return sum(
            (torch.exp(-distance / (2 * alpha)) for alpha in self.config.alphas), torch.zeros_like(distance)
        )
