"""Episode videos: RGB frames to MP4 through `agentrt.mp4.Mp4Writer` (libx264 or mpeg4, fragmented), enlarged to watch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agentrt.mp4 import Mp4Options, Mp4Writer

__all__ = ["VideoWriter"]


class VideoWriter:
    """Append RGB frames (H, W, 3) uint8; odd sizes are padded to even (yuv420p needs it).

    Frames smaller than ``min_side`` pixels are enlarged by a whole factor (nearest neighbour, so
    every pixel the policy saw stays a sharp block): a 64 px policy camera makes a 256 px video
    at no rendering cost, blocky (docs/img/video_before.png). Episode videos come from the
    viewer camera instead (`sims.viewer`, 384x288, ``min_side=0``).
    """

    def __init__(self, path: str | Path, fps: float, min_side: int = 256) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.min_side = min_side
        # mpeg4's default bit rate is blurry at small sizes
        self._writer = Mp4Writer(self.path, Mp4Options(fps=fps, mpeg4_bit_rate=2_000_000))

    @property
    def frames(self) -> int:
        return self._writer.frames

    @property
    def codec(self) -> str:
        return self._writer.codec

    def write(self, image: np.ndarray) -> None:
        scale = -(-self.min_side // max(min(image.shape[:2]), 1))  # ceil: the smallest whole factor that reaches min_side
        if scale > 1:
            image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
        self._writer.write(image)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
