"""A synthetic source that needs no hardware: moving shapes or a test pattern, any size and rate.

    with SyntheticSource(SyntheticConfig(width=640, height=480, fps=30, pattern="shapes")) as source:
        frame = source.read()

Patterns: ``shapes`` (a ball and a square moving over a gradient), ``bars``
(colour bars with a sweeping line), ``noise`` (seeded random pixels, the worst
case for a codec). Frames at least 128 x 8 carry their seq as a 16-bit code of
8 x 8 blocks in the top-left corner (white = 1, most significant bit first);
`read_stamp` reads it back, which lets tests follow a frame through a codec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agentrt.errors import ConfigError
from agentrt.messages import now_ns
from streams.config import SourceConfig
from streams.source import Source, StreamEnded

__all__ = ["SyntheticConfig", "SyntheticSource", "read_stamp", "PATTERNS"]

PATTERNS = ("shapes", "bars", "noise")
_STAMP_BITS = 16
_BLOCK = 8
_BARS = np.array(
    [[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0], [0, 0, 192]],
    dtype=np.uint8,
)


@dataclass
class SyntheticConfig(SourceConfig):
    width: int = 640
    height: int = 480
    fps: float = 30.0  # 0 = as fast as the reader takes frames (nothing dropped)
    pattern: str = "shapes"  # one of PATTERNS
    frames: int = 0  # end after this many frames (0 = endless)
    seed: int = 0  # for "noise"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (2 <= self.width <= 8192 and 2 <= self.height <= 8192):
            raise ConfigError(f"SyntheticConfig: width x height must be within 2..8192, got {self.width}x{self.height}")
        if self.fps < 0:
            raise ConfigError(f"SyntheticConfig.fps: expected >= 0 (0 = as fast as read), got {self.fps}")
        if self.pattern not in PATTERNS:
            raise ConfigError(f"SyntheticConfig.pattern: expected one of {PATTERNS}, got {self.pattern!r}")
        if self.frames < 0:
            raise ConfigError(f"SyntheticConfig.frames: expected >= 0 (0 = endless), got {self.frames}")


def read_stamp(image: np.ndarray) -> int:
    """The seq a synthetic frame carries in its top-left blocks (robust to lossy codecs)."""
    bits = 0
    for i in range(_STAMP_BITS):
        block = image[2:_BLOCK - 2, i * _BLOCK + 2:(i + 1) * _BLOCK - 2]
        bits = (bits << 1) | int(block.mean() > 127)
    return bits


class SyntheticSource(Source):
    """Moving shapes or a test pattern, paced at ``fps`` on the monotonic clock."""

    config_class = SyntheticConfig
    config: SyntheticConfig

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        super().__init__(config)
        self._index = 0
        self._background: np.ndarray | None = None
        self._rng = np.random.default_rng(self.config.seed)

    def describe(self) -> str:
        c = self.config
        return f"synthetic {c.pattern} {c.width}x{c.height}@{c.fps:g}"

    def _open(self) -> None:
        c = self.config
        self.fps = c.fps or None
        self.backpressure = c.fps == 0
        self._index = 0
        self._rng = np.random.default_rng(c.seed)
        if c.pattern == "bars":
            columns = (np.arange(c.width) * len(_BARS)) // c.width
            self._background = np.ascontiguousarray(np.broadcast_to(_BARS[columns], (c.height, c.width, 3)))
        else:
            x = np.linspace(40, 200, c.width, dtype=np.float32)
            y = np.linspace(0, 80, c.height, dtype=np.float32)
            grad = np.stack(np.broadcast_arrays(x[None, :], y[:, None] + 40, 255 - x[None, :]), axis=-1)
            self._background = grad.astype(np.uint8)

    def _close(self) -> None:
        self._background = None

    def _grab(self) -> tuple[np.ndarray, int]:
        c = self.config
        while True:
            index = self._index
            if c.frames and index >= c.frames:
                raise StreamEnded(f"{self.describe()}: ended after {c.frames} frames")
            self._index += 1
            if c.fps > 0:
                period_ns = int(1e9 / c.fps)
                if not self._pace(index * period_ns, period_ns):
                    continue
            t_ns = now_ns()
            image = self._render(index, self._seq)
            if c.pixel_format == "bgr":
                image = np.ascontiguousarray(image[..., ::-1])
            return image, t_ns

    def _render(self, index: int, seq: int) -> np.ndarray:
        c = self.config
        assert self._background is not None
        if c.pattern == "noise":
            image = self._rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8)
        else:
            image = self._background.copy()
            w, h = c.width, c.height
            if c.pattern == "bars":
                x = (index * 4) % w
                image[:, x:x + max(1, w // 80)] = 255
            else:
                r = max(2, min(w, h) // 10)
                cx = _bounce(index * 5, w - 2 * r) + r
                cy = h // 2
                yy, xx = np.ogrid[-r:r, -r:r]
                disk = xx * xx + yy * yy < r * r
                patch = image[cy - r:cy + r, cx - r:cx + r]
                patch[disk[: patch.shape[0], : patch.shape[1]]] = (250, 60, 40)
                s = max(2, min(w, h) // 8)
                sx = w // 4
                sy = _bounce(index * 3, h - s)
                image[sy:sy + s, sx:sx + s] = (40, 220, 90)
        if c.width >= _STAMP_BITS * _BLOCK and c.height >= _BLOCK:
            for i in range(_STAMP_BITS):
                bit = (seq >> (_STAMP_BITS - 1 - i)) & 1
                image[:_BLOCK, i * _BLOCK:(i + 1) * _BLOCK] = 255 if bit else 0
        return image


def _bounce(position: int, span: int) -> int:
    """A position that runs back and forth over 0..span."""
    if span <= 0:
        return 0
    cycle = position % (2 * span)
    return cycle if cycle < span else 2 * span - cycle
