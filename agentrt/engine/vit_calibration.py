"""What the ViT feature cache measured at warm-up, and the steady state it predicts.

Kept apart from ``vit_cache.py`` because it is plain arithmetic on timings: no tensors, testable
with made-up numbers.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

__all__ = ["ViTCacheCalibration", "estimate_calibration"]


@dataclass(frozen=True)
class ViTCacheCalibration:
    """What the cache measured at warm-up on the device it runs on: medians per kind of frame, in ms.

    ``cached_ms`` is the steady state those medians predict, a reference every ``interval`` encoded
    frames (a mean over the warm-up window would depend on where its references fell). Skipped
    frames are not timed: the whole-frame skip runs whether the per-layer reuse is on or off.
    """

    device: str
    frames: int  # frames timed, after one untimed warm-up frame
    plain_ms: float
    reference_ms: float
    partial_ms: float
    cached_ms: float

    @property
    def speedup(self) -> float:
        return self.plain_ms / self.cached_ms if self.cached_ms > 0 else float("inf")

    def as_dict(self) -> dict[str, float | int | str]:
        return {**self.__dict__, "speedup": self.speedup}


def _median(values: list[float], default: float) -> float:
    return statistics.median(values) if values else default


def estimate_calibration(device: str, interval: int, samples: list[tuple[str, float, float]]) -> ViTCacheCalibration:
    """samples: ("reference" | "partial", cached ms, plain ms) per timed frame -> the steady-state estimate."""
    plain = _median([p for _, _, p in samples], 0.0)
    reference = _median([c for kind, c, _ in samples if kind == "reference"], plain)  # none timed: a plain frame
    partial = _median([c for kind, c, _ in samples if kind == "partial"], reference)  # none (interval 1): a reference
    return ViTCacheCalibration(
        device=device,
        frames=len(samples),
        plain_ms=plain,
        reference_ms=reference,
        partial_ms=partial,
        cached_ms=(reference + (interval - 1) * partial) / interval,
    )
