"""A folder of images played as a stream, in file-name order.

    with FolderSource(FolderConfig(path="photos/", fps=5, loop=True)) as source:
        frame = source.read()

Images are read with OpenCV (PNG, JPEG, BMP, TIFF, WebP, PPM/PGM); grey
images become 3-channel. ``fps`` paces them (0 = as fast as read, nothing
dropped). A file that cannot be read is a SourceError naming it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agentrt.errors import ConfigError, SourceError
from agentrt.messages import now_ns
from streams._deps import import_cv2
from streams.config import SourceConfig
from streams.source import Source, StreamEnded

__all__ = ["FolderConfig", "FolderSource", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")


@dataclass
class FolderConfig(SourceConfig):
    path: str = ""  # the folder
    fps: float = 10.0  # 0 = as fast as the reader takes frames
    loop: bool = False
    pattern: str = "*"  # only files matching this glob (e.g. "cam0_*.png")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ConfigError("FolderConfig.path: expected a folder of images, got nothing")
        if self.fps < 0:
            raise ConfigError(f"FolderConfig.fps: expected >= 0 (0 = as fast as read), got {self.fps}")

    def check_exists(self) -> None:
        folder = Path(self.path)
        if not folder.is_dir():
            what = "a file, not a folder" if folder.exists() else "no such folder"
            raise SourceError(f"folder {self.path}: {what}", permanent=True)


class FolderSource(Source):
    """Images from a folder, sorted by name, paced at ``fps``."""

    config_class = FolderConfig
    config: FolderConfig

    def __init__(self, config: FolderConfig | None = None) -> None:
        super().__init__(config)
        self._files: list[Path] = []
        self._index = 0

    def describe(self) -> str:
        return f"folder {self.config.path}"

    def _open(self) -> None:
        import_cv2()
        self.config.check_exists()
        folder = Path(self.config.path)
        self._files = sorted(
            p for p in folder.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and fnmatch.fnmatch(p.name, self.config.pattern)
        )
        if not self._files:
            raise SourceError(
                f"{self.describe()}: no images matching {self.config.pattern!r} (expected {', '.join(IMAGE_SUFFIXES)})",
                permanent=True,
            )
        self.fps = self.config.fps or None
        self.frame_count = len(self._files)
        self.backpressure = self.config.fps == 0
        self._index = 0

    def _close(self) -> None:
        self._files = []

    def _grab(self) -> tuple[np.ndarray, int]:
        cv2 = import_cv2()
        c = self.config
        count = len(self._files)
        while True:
            index = self._index
            if index >= count and not c.loop:
                raise StreamEnded(f"{self.describe()}: ended after {count} images")
            self._index += 1
            if c.fps > 0:
                period_ns = int(1e9 / c.fps)
                if not self._pace(index * period_ns, period_ns):
                    continue
            path = self._files[index % count]
            t_ns = now_ns()
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(f"{self.describe()}: cannot read image {path.name} (missing, corrupt or not an image)")
            if c.pixel_format == "rgb":
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            return image, t_ns
