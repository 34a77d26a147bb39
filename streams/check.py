"""`check_source`: the conformance check every source passes (after Gymnasium's ``check_env``).

    from streams import check_source, make_source
    report = check_source(make_source("synthetic:160x120@60"))

It connects, exercises the three read modes, checks every frame (type,
stream name, shape, dtype, pixel format, increasing seq, capture times on the
monotonic clock and not in the future), disconnects, and connects again. It
raises SourceError naming the first broken promise, and returns what it saw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agentrt.errors import SourceError
from agentrt.messages import Frame, now_ns
from streams.source import Source, StreamEnded

__all__ = ["check_source"]


def _fail(source: Source, what: str) -> SourceError:
    return SourceError(f"check_source({type(source).__name__}, {source.describe()}): {what}")


def _check_frame(source: Source, frame: Any, previous: Frame | None) -> Frame:
    if not isinstance(frame, Frame):
        raise _fail(source, f"a read returned {type(frame).__name__}, expected Frame")
    if frame.stream != source.config.stream:
        raise _fail(source, f"frame.stream is {frame.stream!r}, expected config.stream {source.config.stream!r}")
    image = frame.image
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise _fail(source, f"frame.image must be H x W x 3 uint8, got {getattr(image, 'shape', None)} "
                            f"{getattr(image, 'dtype', type(image).__name__)}")
    if frame.pixel_format != source.config.pixel_format:
        raise _fail(source, f"frame.pixel_format is {frame.pixel_format!r}, expected {source.config.pixel_format!r}")
    now = now_ns()
    if frame.t_capture_ns > now:
        raise _fail(source, f"t_capture_ns is {(frame.t_capture_ns - now) / 1e6:.1f} ms in the future: not CLOCK_MONOTONIC?")
    if now - frame.t_capture_ns > 60e9:
        raise _fail(source, "t_capture_ns is over a minute old: stamp frames at capture with agentrt.messages.now_ns()")
    if previous is not None:
        if frame.seq <= previous.seq:
            raise _fail(source, f"seq went from {previous.seq} to {frame.seq}; expected it to increase")
        if frame.t_capture_ns < previous.t_capture_ns:
            raise _fail(source, "t_capture_ns went backwards")
    return frame


def check_source(source: Source, *, frames: int = 5) -> dict[str, Any]:
    """Exercise ``source`` (connected or not) and return {"frames", "width", "height", "fps", "stats"}."""
    if source.is_connected:
        source.disconnect()
    source.connect()
    try:
        if not source.is_connected:
            raise _fail(source, "connect() returned but is_connected is False")
        if source.width is None or source.height is None:
            raise _fail(source, "connect() must set width and height from the first frame")
        seen: list[Frame] = []
        previous: Frame | None = None
        ended = False
        try:
            for i in range(frames):
                frame = source.read() if i % 2 == 0 else source.async_read(timeout_ms=source.config.timeout_ms)
                previous = _check_frame(source, frame, previous)
                seen.append(previous)
            latest = source.read_latest(max_age_ms=60_000)
            _check_frame(source, latest, None)
            if previous is not None and latest.seq < previous.seq:
                raise _fail(source, "read_latest() returned an older frame than read()")
        except StreamEnded:
            ended = True
        if not seen:
            raise _fail(source, "no frame could be read after connect()")
        try:
            source.read_latest(max_age_ms=-1)
        except SourceError:
            pass
        else:
            raise _fail(source, "read_latest(max_age_ms=-1) must raise: every frame is older than that")
    finally:
        source.disconnect()
    if source.is_connected:
        raise _fail(source, "disconnect() returned but is_connected is still True")
    try:
        source.read()
    except SourceError:
        pass
    else:
        raise _fail(source, "read() after disconnect() must raise SourceError")
    source.connect()  # connect again: the source must be reusable
    try:
        _check_frame(source, source.read(), None)
    finally:
        source.disconnect()
    return {"frames": len(seen), "ended": ended, "width": source.width, "height": source.height,
            "fps": source.fps, "stats": source.stats.as_dict()}
