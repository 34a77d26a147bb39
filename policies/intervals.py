"""Confidence intervals for success rates: how far a rate measured on n episodes can be from the true one."""

from __future__ import annotations

import math

__all__ = ["wilson_interval"]

Z95 = 1.959964  # the two-sided 95 % quantile of the normal distribution


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) for ``successes`` of ``n``.

    Wilson rather than the normal approximation p +- z sqrt(p (1 - p) / n): that one collapses to a point at
    0/n and n/n, exactly where a policy's rates sit (20/20 is not proof of 1.0: Wilson gives [0.84, 1]).
    n = 0 -> (0, 1): nothing is known.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: expected 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at 0/n and n/n the bound is exactly 0 or 1; rounding would leave 1 - 1e-16 outside the rate
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high
