"""The synthetic test pattern: a diagonal gradient that moves with the frame number.

One home, in the core, for the synthetic frame source node (`agentrt.nodes.synthetic`),
the fault-injection nodes, the benchmarks and `agentrt.testing.fake_frame`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_image"]


def synthetic_image(seq: int, height: int, width: int, channels: int) -> np.ndarray:
    """A uint8 H x W x C diagonal gradient shifted by ``seq`` pixels."""
    ys, xs = np.mgrid[0:height, 0:width]  # H x W each
    base = ((xs + ys + seq) % 256).astype(np.uint8)
    return np.repeat(base[:, :, None], channels, axis=2)
