"""MP4 files that play up to the moment their writer died.

A plain MP4 keeps its index (the ``moov`` box) at the end, written by
``close()``: a recorder or a sim killed with ``kill -9`` (or a power cut)
leaves frames that nothing can play. A fragmented MP4 writes an empty index
first and then self-describing fragments (``moof`` + ``mdat``), one at every
keyframe and at least every ``FRAGMENT_S`` seconds, and each one is flushed to
the file as it is made, so a cut file plays up to its last whole fragment
(what the encoder still held, its few frames of lookahead, is lost with it).
``delay_moov`` writes the index with the first fragment, so the first frame
starts at time 0. Streams get no B-frames (``kill_safe_stream``): with them a
fragment cut between a P-frame and the B-frames before it in time would keep
the later frame and lose the earlier ones; without, decode order is display
order and a cut file is exactly a prefix of the recording.

`Mp4Writer` is the one MP4 writer (the sim's episode videos, the stream
recorder): RGB frames in, a codec (``auto``: libx264 where the build has it,
else mpeg4) with its quality options, yuv420p with odd sizes padded by an edge
pixel, fragmented as above (or, with ``kill_safe=False``, a plain MP4 for
datasets); ``flush()`` encodes what the encoder still holds,
``close()`` flushes and finishes the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.errors import MissingDependencyError

__all__ = ["FRAGMENT_S", "KILL_SAFE_OPTIONS", "MOV_SUFFIXES", "AUTO_CODECS", "Mp4Options", "Mp4Writer", "open_mp4",
           "kill_safe_stream"]

FRAGMENT_S = 0.5  # at most this much of a recording (plus the encoder's lookahead) is lost to a kill

KILL_SAFE_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof+delay_moov",
    "frag_duration": str(int(FRAGMENT_S * 1_000_000)),  # microseconds
    "flush_packets": "1",  # FFmpeg's own 32 KiB buffer would otherwise hold the fragments back
}


MOV_SUFFIXES = (".mp4", ".m4v", ".mov")  # FFmpeg's mov muxer: the one with an index at the end


def open_mp4(av: Any, path: str | Path, *, kill_safe: bool = True) -> Any:
    """A PyAV output container for ``path``, flushed as written; fragmented when it is an MP4 (see the module).

    The container format follows the file's suffix, as FFmpeg guesses it; formats
    written front to back anyway (Matroska, AVI, ...) only get the flushing.
    ``kill_safe=False``: a plain MP4 with its index moved to the front when closed
    (``faststart``): for files written in one go and read by seeking (datasets).
    """
    if not kill_safe:
        return av.open(str(path), mode="w", options={"movflags": "faststart"})
    mov = Path(path).suffix.lower() in MOV_SUFFIXES
    options = dict(KILL_SAFE_OPTIONS) if mov else {"flush_packets": KILL_SAFE_OPTIONS["flush_packets"]}
    return av.open(str(path), mode="w", options=options)


def kill_safe_stream(stream: Any) -> None:
    """No B-frames on a PyAV video stream of ``open_mp4``: a cut file is then a prefix of what was written."""
    stream.codec_context.max_b_frames = 0


AUTO_CODECS = ("libx264", "mpeg4")  # codec "auto": the first this PyAV build can encode


def _import_av() -> Any:
    """PyAV, or MissingDependencyError with the install command."""
    try:
        import av
    except ImportError:
        raise MissingDependencyError("av", "writing MP4 videos") from None
    return av


@dataclass
class Mp4Options:
    """How a `Mp4Writer` encodes. ``crf``/``preset`` apply to libx264, ``mpeg4_bit_rate`` to mpeg4."""

    fps: float = 30.0  # the nominal rate in the header; frames given a ``pts`` keep their own timing
    codec: str = "auto"  # "auto" (libx264, else mpeg4), or an FFmpeg encoder name
    crf: int | None = None  # libx264 quality 0 (lossless) .. 51; None = the encoder's default
    preset: str = ""  # libx264 speed/size trade-off; "" = the encoder's default
    mpeg4_bit_rate: int = 0  # 0 = the encoder's default
    time_base: Fraction | None = None  # of the ``pts`` given to `write`; None = frames numbered by the encoder
    rate_denominator: int = 1000  # the largest denominator of the fps fraction in the header
    metadata: dict[str, str] = field(default_factory=dict)  # container metadata, e.g. {"comment": ...}
    gop: int = 0  # frames from one keyframe to the next; 0 = the encoder's default (small: fast seeking)
    kill_safe: bool = True  # fragmented, playable when cut (see the module); False: a plain MP4 (faststart)


class Mp4Writer:
    """The one MP4 writer: ``open(width, height)`` (or the first ``write``), ``write(rgb)``, ``close()``."""

    def __init__(self, path: str | Path, options: Mp4Options | None = None) -> None:
        self.path = Path(path)
        self.options = options or Mp4Options()
        self.codec = ""  # the encoder in use, once open
        self.size: tuple[int, int] | None = None  # (width, height) of the video: even
        self.frames = 0
        self.bytes = 0  # of encoded packets written so far (behind ``frames`` by the encoder's lookahead)
        self._av: Any = _import_av()  # now: a missing PyAV is one line before any frame
        self._container: Any = None
        self._stream: Any = None
        self._flushed = False

    @property
    def is_open(self) -> bool:
        return self._container is not None

    def open(self, width: int, height: int) -> None:
        """Create the file for frames of ``width`` x ``height`` (padded to even). Raises what PyAV raises for a
        codec or path it cannot use; MissingDependencyError when ``auto`` finds no encoder."""
        o = self.options
        av = self._av
        width, height = width + width % 2, height + height % 2
        self._container = open_mp4(av, self.path, kill_safe=o.kill_safe)
        try:
            self._container.metadata.update(o.metadata)
            rate = Fraction(o.fps).limit_denominator(o.rate_denominator)
            for codec in AUTO_CODECS if o.codec == "auto" else (o.codec,):
                try:
                    self._stream = self._container.add_stream(codec, rate=rate)
                except Exception:  # noqa: BLE001 - PyAV raises codec-specific errors; try the next codec
                    if o.codec != "auto":
                        raise  # the caller says what to do about the codec it asked for
                    continue
                self.codec = codec
                break
            if self._stream is None:
                raise MissingDependencyError("av", "an H.264 or MPEG-4 encoder", "pip install --force-reinstall av")
            stream = self._stream
            kill_safe_stream(stream)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            if o.gop:
                stream.codec_context.gop_size = o.gop
            if o.time_base is not None:
                stream.codec_context.time_base = o.time_base
                stream.time_base = o.time_base
            if self.codec == "libx264":
                x264 = {"crf": str(o.crf)} if o.crf is not None else {}
                stream.options = {**x264, **({"preset": o.preset} if o.preset else {})}
            if self.codec == "mpeg4" and o.mpeg4_bit_rate:
                stream.bit_rate = o.mpeg4_bit_rate
        except BaseException:
            self._finish(flush=False)
            raise
        self.size = (width, height)

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        """Encode one RGB uint8 (H, W, 3) image; ``pts`` in ``options.time_base`` units. Opens on the first."""
        if self._container is None:
            self.open(image.shape[1], image.shape[0])
        assert self.size is not None
        width, height = self.size
        if (height, width) != image.shape[:2]:  # odd sizes: one edge pixel more (yuv420p needs even)
            image = np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0)), mode="edge")
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:, :, :3]), format="rgb24")
        if pts is not None:
            frame.pts = pts
            frame.time_base = self.options.time_base
        self._mux(self._stream.encode(frame))
        self.frames += 1

    def flush(self) -> None:
        """Encode and write what the encoder still holds (its lookahead): the end of the video."""
        if self._container is not None and not self._flushed:
            self._flushed = True  # an encoder flushed once is at its end
            self._mux(self._stream.encode())

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:
            self.bytes += packet.size
            self._container.mux(packet)

    def close(self) -> None:
        """Flush and finish the file. Safe to call twice."""
        self._finish(flush=True)

    def _finish(self, *, flush: bool) -> None:
        try:
            if flush:
                self.flush()
        finally:
            container, self._container, self._stream = self._container, None, None
            if container is not None:
                container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
