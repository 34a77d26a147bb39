"""Write any stream of Frames to MP4 (H.264 through PyAV) with a sidecar of capture timestamps.

    with Recorder(RecorderConfig(path="run1.mp4")) as recorder:
        for frame in frames:
            recorder.write(frame)
    # run1.mp4 and run1.frames.csv (index, seq, t_capture_ns, pts_us)

The codec is libx264 when FFmpeg has it, else mpeg4; pixels are yuv420p,
which needs even dimensions, so an odd width or height is padded by one edge
pixel and the true size is kept in the MP4's ``comment`` metadata (JSON) for
the player to crop back. Presentation timestamps are the capture times
(microseconds from the first frame), so even a plain video player shows the
original timing; the sidecar keeps the exact seq and t_capture_ns of every
frame and is written as frames arrive (it survives a crash). The MP4 is
fragmented and flushed as it goes (``agentrt.mp4``): a recorder killed with
``kill -9`` leaves a file that plays up to about half a second before the kill.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from agentrt.errors import ConfigError, SourceError
from agentrt.messages import Frame
from agentrt.mp4 import Mp4Options, Mp4Writer
from agentrt.pixels import to_rgb
from streams._deps import import_av
from streams.config import check_field_types

__all__ = ["RecorderConfig", "Recorder", "sidecar_path", "read_sidecar", "SIDECAR_COLUMNS"]

log = logging.getLogger(__name__)

SIDECAR_COLUMNS = ("index", "seq", "t_capture_ns", "pts_us")
_TIME_BASE = Fraction(1, 1_000_000)


def sidecar_path(path: str | Path) -> Path:
    """``run1.mp4`` -> ``run1.frames.csv``."""
    p = Path(path)
    return p.with_name(p.stem + ".frames.csv")


def read_sidecar(path: str | Path) -> list[tuple[int, int]]:
    """(seq, t_capture_ns) for every frame of a recording, from its sidecar; SourceError if unreadable."""
    side = sidecar_path(path)
    try:
        with side.open(newline="") as f:
            rows = list(csv.DictReader(f))
        return [(int(r["seq"]), int(r["t_capture_ns"])) for r in rows]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise SourceError(f"recording sidecar {side}: cannot read it ({type(exc).__name__}: {exc})") from None


@dataclass
class RecorderConfig:
    path: str = "recording.mp4"
    codec: str = "auto"  # "auto" (libx264 if available, else mpeg4), "libx264", "mpeg4", ...
    crf: int = 23  # libx264 quality: 0 lossless .. 51 worst
    preset: str = "veryfast"  # libx264 speed/size trade-off
    fps: float = 30.0  # nominal rate in the header; real timing comes from the frames

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.path:
            raise ConfigError("RecorderConfig.path: expected an output file like 'run1.mp4', got nothing")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"RecorderConfig.crf: expected 0..51, got {self.crf}")
        if self.fps <= 0:
            raise ConfigError(f"RecorderConfig.fps: expected > 0, got {self.fps}")


class Recorder:
    """Opens the file on the first frame (its size fixes the video size); ``close()`` finishes it."""

    def __init__(self, config: RecorderConfig | None = None) -> None:
        self.config = config or RecorderConfig()
        self.path = Path(self.config.path)
        self.sidecar = sidecar_path(self.path)
        self.frames = 0
        self.codec = ""
        self._writer: Mp4Writer | None = None
        self._csv_file: IO[str] | None = None
        self._csv: Any = None
        self._size: tuple[int, int] | None = None  # (width, height) of the first frame
        self._t0_ns = 0
        self._last_pts = -1
        self._resize_warned = False

    def _open(self, frame: Frame) -> None:
        av = import_av()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"recorder: cannot create the folder {self.path.parent} for {self.path}: {exc.strerror}") from None
        width, height = frame.width, frame.height
        self._size = (width, height)
        c = self.config
        meta = {"stream": frame.stream, "width": width, "height": height, "pixel_format": frame.pixel_format}
        if c.codec == "auto":
            self.codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        else:
            self.codec = c.codec
        options = Mp4Options(fps=c.fps, codec=self.codec, crf=c.crf, preset=c.preset, time_base=_TIME_BASE,
                             rate_denominator=1001, metadata={"comment": json.dumps(meta)})
        writer = Mp4Writer(self.path, options)  # fragmented: a killed recorder leaves a playable file
        try:
            self._writer = writer
            writer.open(width, height)
            self._csv_file = self.sidecar.open("w", newline="")
            self._csv = csv.writer(self._csv_file)
            self._csv.writerow(SIDECAR_COLUMNS)
        except (OSError, ValueError, av.error.FFmpegError) as exc:
            self._abort()
            raise ConfigError(f"recorder: cannot write {self.path} with codec {self.codec}: {exc}") from None
        self._t0_ns = frame.t_capture_ns
        log.info("recording %s (%dx%d, %s) to %s", frame.stream, width, height, self.codec, self.path)

    def write(self, frame: Frame) -> None:
        """Encode one frame (any pixel format: read as `agentrt.pixels.to_rgb` reads it); the first opens the file."""
        if self._writer is None:
            self._open(frame)
        assert self._writer is not None
        image = self._prepare(frame)
        pts = max((frame.t_capture_ns - self._t0_ns) // 1000, self._last_pts + 1)
        self._last_pts = pts
        self._writer.write(image, pts)
        assert self._csv is not None and self._csv_file is not None
        self._csv.writerow((self.frames, frame.seq, frame.t_capture_ns, pts))
        self.frames += 1
        if self.frames % 30 == 0:
            self._csv_file.flush()

    def _prepare(self, frame: Frame) -> np.ndarray:
        assert self._size is not None
        image = to_rgb(frame)  # the one conversion: BGR(A), gray, depth and 16-bit frames as every consumer sees them
        width, height = self._size
        if (frame.width, frame.height) != (width, height):
            from streams._deps import import_cv2

            if not self._resize_warned:
                log.warning("recorder: frame seq %d is %dx%d, the recording is %dx%d: resizing",
                            frame.seq, frame.width, frame.height, width, height)
                self._resize_warned = True
            image = import_cv2().resize(np.ascontiguousarray(image), (width, height))
        return image  # Mp4Writer pads an odd size by an edge pixel

    def close(self) -> None:
        """Flush the encoder and finish the file and its sidecar. Safe to call twice."""
        if self._writer is not None:
            try:
                self._writer.flush()
            finally:
                self._abort()
            log.info("recorded %d frames to %s (+ %s)", self.frames, self.path, self.sidecar.name)

    def _abort(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        csv_file, self._csv_file = self._csv_file, None
        if csv_file is not None:
            csv_file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
