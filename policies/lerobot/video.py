"""One camera's MP4 in a LeRobot dataset: episodes back to back, frame k of the file at k / fps seconds.

Written with H.264 (libx264, through agentrt's one `Mp4Writer`), not AV1 as LeRobot writes by
default: on 64 px sim frames libx264 (crf 18, veryfast) encodes ~2.7x faster than SVT-AV1 at
LeRobot's settings for the same median PSNR (files ~1.6x larger; `policies.lerobot.codec_bench`,
docs/policies.md), and H.264 plays in any browser or player. LeRobot decodes both (``video.codec``
in info.json says which), and so does this reader (PyAV's dav1d for LeRobot's AV1). yuv420p, a
keyframe every ``gop`` frames as LeRobot writes (``g=2``), so a reader seeking to any timestamp
decodes at most one frame more.

Reading decodes a whole file once, in order, and picks the frame nearest each timestamp asked
for; frames can be brought to a model's size as they come (``transform``), so a long 640 x 480
recording never sits in memory at full size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from agentrt.errors import ConfigError
from agentrt.mp4 import Mp4Options, Mp4Writer

__all__ = ["DatasetVideoConfig", "CameraVideo", "decode_video", "frames_at"]


@dataclass
class DatasetVideoConfig:
    codec: str = "libx264"
    crf: int = 18  # near-transparent at 32-64 px (PSNR ~30 dB, docs/policies.md); LeRobot's own default is 30
    gop: int = 2  # LeRobot's g=2: every other frame a keyframe, for random access
    preset: str = "veryfast"


class CameraVideo:
    """Appends episodes' frames to one MP4; ``start`` says at which second the next episode begins."""

    def __init__(self, path: Path, fps: int, config: DatasetVideoConfig) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fps = fps
        self._writer = Mp4Writer(path, Mp4Options(fps=fps, codec=config.codec, crf=config.crf, preset=config.preset,
                                                  time_base=Fraction(1, fps), gop=config.gop, kill_safe=False))

    @property
    def frames(self) -> int:
        """Frames written to the file so far (the writer counts them)."""
        return self._writer.frames

    @property
    def codec(self) -> str:
        return self._writer.codec

    @property
    def bytes(self) -> int:
        """Encoded so far (a few frames behind: the encoder's lookahead)."""
        return self._writer.bytes

    @property
    def start_s(self) -> float:
        """The timestamp of the next frame written (the end of what is written)."""
        return self.frames / self.fps

    def write(self, images: np.ndarray) -> tuple[float, float]:
        """(T, H, W, 3) uint8 frames -> the episode's (from_timestamp, to_timestamp) in the file."""
        start = self.start_s
        for image in images:
            self._writer.write(image, pts=self.frames)
        return start, self.start_s

    def close(self) -> None:
        self._writer.close()


def decode_video(path: Path, transform: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """All frames of ``path`` in presentation order: (timestamps in s, RGB uint8 frames, ``transform``-ed)."""
    import av

    from streams.video import frame_to_array

    times: list[float] = []
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            reformatter = av.video.reformatter.VideoReformatter()  # one swscale context for the file
            for frame in container.decode(stream):
                image = frame_to_array(reformatter, frame)
                pts, base = frame.pts, frame.time_base
                times.append(float(pts * base) if pts is not None and base is not None
                             else len(times) / float(stream.average_rate or 1))
                frames.append(transform(image) if transform is not None else image)
    except av.error.FFmpegError as e:  # a codec this PyAV build cannot decode, or a damaged file
        raise ConfigError(f"{path}: cannot decode ({e}); check the file plays, or re-encode it to H.264") from None
    order = np.argsort(times, kind="stable")
    return np.asarray(times)[order], [frames[i] for i in order]


def frames_at(times: np.ndarray, wanted: np.ndarray, fps: float, path: Path) -> np.ndarray:
    """Indices of the decoded frames nearest the ``wanted`` timestamps; a miss by over half a frame is an error."""
    if not len(times):
        raise ConfigError(f"{path}: the video has no frames; the dataset is damaged (record the episodes again)")
    right = np.clip(np.searchsorted(times, wanted), 1, len(times) - 1) if len(times) > 1 else np.zeros(len(wanted), int)
    left = np.maximum(right - 1, 0)
    nearest = np.where(np.abs(times[left] - wanted) <= np.abs(times[right] - wanted), left, right)
    off = np.abs(times[nearest] - wanted)
    if len(off) and off.max() > 0.5 / fps:
        bad = int(off.argmax())
        raise ConfigError(f"{path}: no frame near {wanted[bad]:.3f} s (nearest {times[nearest[bad]]:.3f} s); the "
                          "episodes' from/to timestamps do not match the video (re-encode it or record again)")
    return nearest
