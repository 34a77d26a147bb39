"""MP4 writing with PyAV: libx264 where the build has it, else mpeg4; yuv420p, even sizes; fragmented (agentrt.mp4)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.errors import MissingDependencyError
from agentrt.mp4 import kill_safe_stream, open_mp4

__all__ = ["VideoWriter"]

log = logging.getLogger(__name__)


class VideoWriter:
    """Append RGB frames (H, W, 3) uint8; odd sizes are padded to even (yuv420p needs it).

    Frames smaller than ``min_side`` pixels are enlarged by a whole factor (nearest neighbour, so
    every pixel the policy saw stays a sharp block): a 64 px policy camera makes a 256 px video
    a person can watch, at no rendering cost.
    """

    def __init__(self, path: str | Path, fps: float, min_side: int = 256) -> None:
        try:
            import av
        except ImportError:
            raise MissingDependencyError("av", "writing MP4 videos") from None
        self._av: Any = av
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.min_side = min_side
        self.frames = 0
        self.codec = ""
        self._container: Any = None
        self._stream: Any = None

    def _open(self, width: int, height: int) -> None:
        from fractions import Fraction

        av = self._av
        self._container = open_mp4(av, self.path)  # fragmented: an episode cut by a kill still plays
        rate = Fraction(self.fps).limit_denominator(1000)
        for codec in ("libx264", "mpeg4"):
            try:
                self._stream = self._container.add_stream(codec, rate=rate)
                self.codec = codec
                break
            except Exception:  # noqa: BLE001 - PyAV raises codec-specific errors; try the next codec
                continue
        if self._stream is None:
            self._container.close()
            raise MissingDependencyError("av", "an H.264 or MPEG-4 encoder", "pip install --force-reinstall av")
        kill_safe_stream(self._stream)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        if self.codec == "mpeg4":
            self._stream.bit_rate = 2_000_000  # the default is blurry at small sizes
        log.debug("writing %s with %s at %sx%s", self.path, self.codec, width, height)

    def write(self, image: np.ndarray) -> None:
        scale = -(-self.min_side // max(min(image.shape[:2]), 1))  # ceil: the smallest whole factor that reaches min_side
        if scale > 1:
            image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
        height, width = image.shape[0] + image.shape[0] % 2, image.shape[1] + image.shape[1] % 2
        if (height, width) != image.shape[:2]:
            image = np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0)), mode="edge")
        if self._container is None:
            self._open(width, height)
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:, :, :3]), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
