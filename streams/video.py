"""Video files and network streams (rtsp://, http(s)://, rtmp://, udp://...) through PyAV.

    with VideoSource(VideoConfig(path="clip.mp4", loop=True)) as source:       # paced at the file's rate
        frame = source.read()
    VideoSource(VideoConfig(path="clip.mp4", realtime=False))                  # as fast as it is read
    VideoSource(VideoConfig(path="rtsp://192.168.1.10:554/stream1"))           # reconnects with backoff

Files are paced at their own timestamps (``realtime``, default on); a frame
that is already more than one frame period late is decoded but not converted
and is counted in ``stats.skipped``. With ``realtime=False`` every frame is
delivered, as fast as the reader takes them. Live network streams are not
paced (they arrive at their own rate); when one drops, stalls past
``timeout_ms`` or ends, it is reconnected with exponential backoff. A missing
or corrupt file is a SourceError that says which file and why. So is a file
cut short (a copy that stopped half-way, a faststart MP4 cut in half): every
frame before the cut is delivered, then, instead of a normal end of file, a
SourceError says it is truncated (an MP4 whose boxes run past the end of the
file, or fewer frames than the header counts).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentrt.errors import ConfigError, SourceError
from agentrt.messages import now_ns
from streams._deps import import_av
from streams.config import SourceConfig
from streams.source import Source, SourceLost, StreamEnded

__all__ = ["VideoConfig", "VideoSource", "NETWORK_SCHEMES", "LIVE_SCHEMES", "is_network", "frame_to_array",
           "mp4_truncation"]

log = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://", "tcp://",
                   "srt://", "rtp://")
LIVE_SCHEMES = tuple(s for s in NETWORK_SCHEMES if not s.startswith("http"))  # never paced


def is_network(path: str) -> bool:
    return path.lower().startswith(NETWORK_SCHEMES)


@dataclass
class VideoConfig(SourceConfig):
    path: str = ""  # a video file, or a network URL (rtsp://, http(s)://, rtmp://, udp://, ...)
    realtime: bool = True  # pace at the file's own timestamps; False = as fast as read (no drops)
    loop: bool = False  # files: start over at the end
    rtsp_transport: str = "tcp"  # "tcp" (reliable) or "udp"
    options: dict[str, str] = field(default_factory=dict)  # extra FFmpeg demuxer options

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if not self.path:
            raise ConfigError(f"{name}.path: expected a video file or a stream URL, got nothing")
        if self.rtsp_transport not in ("tcp", "udp"):
            raise ConfigError(f"{name}.rtsp_transport: expected 'tcp' or 'udp', got {self.rtsp_transport!r}")
        if self.loop and is_network(self.path) and self.path.lower().startswith(LIVE_SCHEMES):
            raise ConfigError(f"{name}.loop: a live stream ({self.path}) cannot loop; it reconnects instead")

    def check_exists(self) -> None:
        if not is_network(self.path) and not os.path.isfile(self.path):
            what = "a folder, not a video file" if os.path.isdir(self.path) else "no such file"
            raise SourceError(f"file {self.path}: {what} (cwd {os.getcwd()})", permanent=True)


def mp4_truncation(path: str) -> str:
    """Why an MP4 / MOV (ISO base media) file is cut short: a top-level box that runs past its end; "" if none.

    A faststart MP4 keeps its index (moov) first, so a copy cut in half still opens and its frames
    decode up to the cut; only the box sizes show that the media data (mdat) was meant to go on.
    Files of other formats give "".
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        pos = 0
        for _ in range(1_000_000):  # a fragmented MP4 has a few boxes per fragment
            if pos >= size:
                return ""
            f.seek(pos)
            header = f.read(16)
            kind = header[4:8]
            if pos == 0 and kind != b"ftyp":
                return ""  # not an ISO base media file
            if len(header) < 8:
                return f"it ends inside a box header at byte {pos} of {size}"
            box_size = int.from_bytes(header[:4], "big")
            if box_size == 1 and len(header) == 16:
                box_size = int.from_bytes(header[8:16], "big")  # 64-bit size
            elif box_size == 0:
                return ""  # "to the end of the file" by definition
            if box_size < 8:
                return ""  # not a box structure we can judge: FFmpeg will say what it thinks
            if pos + box_size > size:
                name = kind.decode("latin-1")
                return (f"its '{name}' box at byte {pos} needs {box_size} bytes, the file ends "
                        f"{pos + box_size - size} bytes short of that")
            pos += box_size
    return ""


def frame_to_array(reformatter: Any, av_frame: Any, pixel_format: str = "rgb") -> np.ndarray:
    """A decoded frame as H x W x 3 uint8 (RGB or BGR).

    ``reformatter`` is one ``av.video.reformatter.VideoReformatter`` kept for the
    whole stream: it keeps the swscale context, which ``frame.to_ndarray(format=...)``
    builds anew for every frame (about half the cost of decoding a VGA frame).
    """
    converted = reformatter.reformat(av_frame, format="bgr24" if pixel_format == "bgr" else "rgb24")
    return np.ascontiguousarray(converted.to_ndarray())


class VideoSource(Source):
    """Frames decoded by PyAV from a file or a network stream."""

    config_class: type[SourceConfig] = VideoConfig
    config: VideoConfig

    def __init__(self, config: VideoConfig | None = None) -> None:
        super().__init__(config)
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._index = 0  # frames decoded so far (over all loops)
        self._loop_index = 0  # frames decoded in this pass
        self._loop_offset_s = 0.0  # stream time added by earlier loops
        self._last_time_s = 0.0
        self._first_time_s = 0.0
        self._period_s = 1 / 30
        self._reformatter: Any = None
        self._live_http = False
        self._truncation = ""  # why the file is cut short, found at open ("" = it is whole, as far as we can tell)

    @property
    def network(self) -> bool:
        return is_network(self.config.path)

    def describe(self) -> str:
        return f"stream {self.config.path}" if self.network else f"file {self.config.path}"

    @property
    def live(self) -> bool:
        """A live stream: rtsp/rtmp/udp/..., or an http(s) stream without a duration (known after connect).

        Live streams are neither paced nor held back for a slow reader: the newest frame replaces an
        unread one (counted in ``stats.replaced``), so the reader never falls behind the camera.
        """
        return self.config.path.lower().startswith(LIVE_SCHEMES) or self._live_http

    @property
    def _paced(self) -> bool:
        return self.config.realtime and not self.live

    def _open(self) -> None:
        av = import_av()
        path = self.config.path
        self.config.check_exists()
        options = dict(self.config.options)
        if path.lower().startswith(("rtsp://", "rtsps://")):
            options.setdefault("rtsp_transport", self.config.rtsp_transport)
        timeout_s = self.config.timeout_ms / 1000
        try:
            self._container = av.open(path, options=options, timeout=(timeout_s, timeout_s))
        except av.error.FFmpegError as exc:
            raise self._error_from(exc, "cannot open") from None
        try:
            if not self._container.streams.video:
                raise SourceError(f"{self.describe()}: has no video stream")
            stream = self._container.streams.video[0]
            if not self.network:
                stream.thread_type = "AUTO"  # frame threads: throughput for files (adds latency, so not live)
            self._live_http = self.network and self._container.duration is None
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            self._period_s = 1 / self.fps if self.fps else 1 / 30
            self._frames = self._container.decode(stream)
            if not self.network:
                self.frame_count = int(stream.frames or 0) or None  # what the header counts
                self._truncation = mp4_truncation(path)
        except BaseException:
            self._close()
            raise
        self._loop_index = 0
        self._reformatter = av.video.reformatter.VideoReformatter()
        self.backpressure = not self.config.realtime and not self.live  # as fast as read, nothing dropped
        self._on_open_container()

    def _on_open_container(self) -> None:
        """Hook for subclasses (the player reads its sidecar here)."""

    def _close(self) -> None:
        self._frames = None
        container, self._container = self._container, None
        if container is not None:
            container.close()

    def _error_from(self, exc: Exception, doing: str) -> SourceError:
        av = import_av()
        text = f"{self.describe()}: {doing}: {exc}"
        if self.network:
            return SourceLost(text)  # the network may come back
        if isinstance(exc, av.error.InvalidDataError):
            return SourceError(f"{self.describe()}: {doing}: not a video file or corrupt ({exc})")
        return SourceError(text)

    def _next_av_frame(self) -> Any:
        av = import_av()
        assert self._frames is not None
        try:
            return next(self._frames)
        except StopIteration:
            pass
        except av.error.FFmpegError as exc:
            raise self._error_from(exc, f"decoding failed after {self._index} frames") from None
        if self.network:
            raise SourceLost(f"{self.describe()}: stream ended after {self._index} frames")
        cut = self._cut_short()
        if cut:
            raise SourceError(f"{self.describe()}: truncated, {cut}; the {self._loop_index} frame(s) before "
                              f"the cut were delivered (was the file copied or recorded only in part?)")
        if not self.config.loop or self._loop_index == 0:
            raise StreamEnded(f"{self.describe()}: end of file after {self._index} frames")
        self._loop_offset_s += self._last_time_s + self._period_s
        self._restart()
        try:
            return next(self._frames)
        except (StopIteration, av.error.FFmpegError) as exc:
            raise SourceError(f"{self.describe()}: cannot loop back to the start: {exc}") from None

    def _cut_short(self) -> str:
        """At the end of a pass over a file: why it ended before its own header says it should, or ""."""
        if self._truncation:
            return self._truncation
        declared, decoded = self.frame_count, self._loop_index
        if declared and declared - decoded > max(1, declared // 100):  # a frame or 1 % of slack: decoder quirks
            return f"{decoded} of the {declared} frames its header counts are in it"
        return ""

    def _restart(self) -> None:
        """Back to the first frame (loop): reopen, which is exact for every container."""
        self._close()
        self._open()

    def _frame_time_s(self, av_frame: Any) -> float:
        """Seconds into this pass at which the frame is due."""
        t = av_frame.time
        return float(t) if t is not None else self._loop_index * self._period_s

    def _to_image(self, av_frame: Any) -> np.ndarray:
        return frame_to_array(self._reformatter, av_frame, self.config.pixel_format)

    def _grab(self) -> tuple[np.ndarray, int]:
        while True:
            av_frame = self._next_av_frame()
            if self._loop_index == 0:
                self._first_time_s = self._frame_time_s(av_frame)
            t_s = self._frame_time_s(av_frame) - self._first_time_s
            self._last_time_s = t_s
            self._loop_index += 1
            self._index += 1
            if self._paced:
                due_ns = int((self._loop_offset_s + t_s) * 1e9)
                if not self._pace(due_ns, int(self._period_s * 1e9)):
                    continue
            t_ns = now_ns()
            return self._to_image(av_frame), t_ns

    def _on_reopen(self) -> None:
        super()._on_reopen()
        self._loop_offset_s = 0.0
