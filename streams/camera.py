"""A local camera through OpenCV: a device index, a device path, or anything OpenCV opens.

    with OpenCVCamera(CameraConfig(device=0, width=1280, height=720, fps=30)) as camera:
        print(camera.width, camera.height, camera.fps)    # what the camera actually gave
        frame = camera.read()

The requested resolution and rate are requests: cameras round them, and the
actual values are logged and kept in ``width``, ``height`` and ``fps``.
OpenCV delivers BGR; frames are converted to RGB unless
``pixel_format="bgr"`` (then ``Frame.pixel_format`` says "bgr").

``t_capture_ns`` is taken right after ``grab()`` returns, before the pixels
are decoded. A camera that stops delivering (unplugged, driver stall) raises
SourceLost, and the grab thread reopens it with exponential backoff. When the
camera reports its rate, intervals much longer than one period count as
skipped frames.

Without a device, OpenCV's own file and URL handling stands in: ``device``
may be a video file path or an http(s)/rtsp URL (FFmpeg backend).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentrt.errors import ConfigError
from agentrt.messages import now_ns
from streams._deps import import_cv2
from streams.config import SourceConfig
from streams.source import Source, SourceLost

__all__ = ["CameraConfig", "OpenCVCamera", "BACKENDS"]

log = logging.getLogger(__name__)

# name -> cv2 constant name
BACKENDS = {
    "any": "CAP_ANY",
    "v4l2": "CAP_V4L2",
    "ffmpeg": "CAP_FFMPEG",
    "gstreamer": "CAP_GSTREAMER",
    "dshow": "CAP_DSHOW",
    "msmf": "CAP_MSMF",
    "avfoundation": "CAP_AVFOUNDATION",
}


@dataclass
class CameraConfig(SourceConfig):
    device: int | str = 0  # index (/dev/videoN), a device path, or a file / URL OpenCV can open
    width: int | None = None  # requested; None = the camera's default
    height: int | None = None
    fps: float | None = None
    backend: str = "any"  # one of BACKENDS
    fourcc: str = ""  # e.g. "MJPG": USB cameras reach higher rates compressed
    buffer_size: int = 1  # driver queue length: 1 keeps frames fresh

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.device, int) and self.device < 0:
            raise ConfigError(f"CameraConfig.device: expected an index >= 0 or a path, got {self.device}")
        if isinstance(self.device, str) and not self.device:
            raise ConfigError("CameraConfig.device: expected an index >= 0 or a path, got ''")
        for key in ("width", "height"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ConfigError(f"CameraConfig.{key}: expected > 0 or None, got {value}")
        if self.fps is not None and self.fps <= 0:
            raise ConfigError(f"CameraConfig.fps: expected > 0 or None, got {self.fps}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"CameraConfig.backend: expected one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.fourcc and len(self.fourcc) != 4:
            raise ConfigError(f"CameraConfig.fourcc: expected 4 characters like 'MJPG', got {self.fourcc!r}")
        if self.buffer_size < 1:
            raise ConfigError(f"CameraConfig.buffer_size: expected >= 1, got {self.buffer_size}")


class OpenCVCamera(Source):
    """A camera (or a file / URL standing in for one) read through cv2.VideoCapture."""

    config_class = CameraConfig
    config: CameraConfig

    def __init__(self, config: CameraConfig | None = None) -> None:
        super().__init__(config)
        self._capture: Any = None
        self._last_grab_ns = 0
        self._frames_since_open = 0

    def describe(self) -> str:
        return f"camera {self.config.device}"

    def _open(self) -> None:
        cv2 = import_cv2()
        c = self.config
        device: int | str = c.device
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        api = getattr(cv2, BACKENDS[c.backend], cv2.CAP_ANY)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, c.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, c.timeout_ms]
        capture = cv2.VideoCapture(device, api, params)
        if not capture.isOpened():
            capture.release()
            hint = " (is it plugged in? see `ls /dev/video*`)" if isinstance(device, int) else ""
            raise SourceLost(f"{self.describe()}: OpenCV cannot open it{hint}")
        self._capture = capture
        try:
            if c.fourcc:
                capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*c.fourcc))
            if c.width:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
            if c.height:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
            if c.fps:
                capture.set(cv2.CAP_PROP_FPS, c.fps)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, c.buffer_size)
            actual_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            self.fps = actual_fps if 0 < actual_fps < 1000 else None
            width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        except BaseException:
            self._close()
            raise
        wanted = (c.width or width, c.height or height, c.fps or self.fps)
        if wanted != (width, height, self.fps):
            log.warning("%s: asked for %sx%s @ %s fps, got %dx%d @ %s fps", self.describe(), c.width, c.height,
                        c.fps, width, height, f"{self.fps:g}" if self.fps else "unknown")
        self._last_grab_ns = 0
        self._frames_since_open = 0

    def _close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _grab(self) -> tuple[np.ndarray, int]:
        cv2 = import_cv2()
        if not self._capture.grab():
            raise SourceLost(f"{self.describe()}: no frame within timeout_ms={self.config.timeout_ms} "
                             "(unplugged, stalled, or the end of a file standing in for it)")
        t_ns = now_ns()
        ok, image = self._capture.retrieve()
        if not ok or image is None:
            raise SourceLost(f"{self.describe()}: grabbed a frame but could not decode it")
        self._count_missing(t_ns)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if self.config.pixel_format == "rgb":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return image, t_ns

    def _count_missing(self, t_ns: int) -> None:
        """Intervals of more than 1.5 periods mean the camera dropped frames: count them as skipped."""
        self._frames_since_open += 1
        if self.fps and self._last_grab_ns and self._frames_since_open > 5:
            periods = (t_ns - self._last_grab_ns) * self.fps / 1e9
            if periods > 1.5:
                self._skip(int(round(periods)) - 1)
        self._last_grab_ns = t_ns
