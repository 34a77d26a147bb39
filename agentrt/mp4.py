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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["FRAGMENT_S", "KILL_SAFE_OPTIONS", "MOV_SUFFIXES", "open_mp4", "kill_safe_stream"]

FRAGMENT_S = 0.5  # at most this much of a recording (plus the encoder's lookahead) is lost to a kill

KILL_SAFE_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof+delay_moov",
    "frag_duration": str(int(FRAGMENT_S * 1_000_000)),  # microseconds
    "flush_packets": "1",  # FFmpeg's own 32 KiB buffer would otherwise hold the fragments back
}


MOV_SUFFIXES = (".mp4", ".m4v", ".mov")  # FFmpeg's mov muxer: the one with an index at the end


def open_mp4(av: Any, path: str | Path) -> Any:
    """A PyAV output container for ``path``, flushed as written; fragmented when it is an MP4 (see the module).

    The container format follows the file's suffix, as FFmpeg guesses it; formats
    written front to back anyway (Matroska, AVI, ...) only get the flushing.
    """
    mov = Path(path).suffix.lower() in MOV_SUFFIXES
    options = dict(KILL_SAFE_OPTIONS) if mov else {"flush_packets": KILL_SAFE_OPTIONS["flush_packets"]}
    return av.open(str(path), mode="w", options=options)


def kill_safe_stream(stream: Any) -> None:
    """No B-frames on a PyAV video stream of ``open_mp4``: a cut file is then a prefix of what was written."""
    stream.codec_context.max_b_frames = 0
