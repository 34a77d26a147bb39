"""Replay a recording made by `Recorder` with its original timing.

    with PlayerSource(PlayerConfig(path="run1.mp4")) as player:       # same gaps between frames as recorded
        frame = player.read()
    PlayerSource(PlayerConfig(path="run1.mp4", speed=2.0, loop=True))  # twice as fast, over and over

Frame ``i`` is due ``(t_capture[i] - t_capture[0]) / speed`` after the first,
from the sidecar (``run1.frames.csv``); without a sidecar the MP4's own
timestamps (the recorder writes capture times there too) are used, with a
warning. Frames are stamped anew at replay (``t_capture_ns`` is when the
player delivered them; the recorded values stay in the sidecar). An odd size
padded by the recorder is cropped back. ``speed=0`` plays as fast as read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentrt.errors import ConfigError
from streams.recorder import read_sidecar, sidecar_path
from streams.video import VideoConfig, VideoSource, is_network

__all__ = ["PlayerConfig", "PlayerSource"]

log = logging.getLogger(__name__)


@dataclass
class PlayerConfig(VideoConfig):
    speed: float = 1.0  # 2.0 = twice as fast; 0 = as fast as read (nothing dropped)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.speed < 0:
            raise ConfigError(f"PlayerConfig.speed: expected >= 0 (0 = as fast as read), got {self.speed}")
        if is_network(self.path):
            raise ConfigError(f"PlayerConfig.path: expected a local recording (.mp4 + .frames.csv), got {self.path}")
        self.realtime = self.speed > 0


class PlayerSource(VideoSource):
    """A recording replayed with the gaps between its frames as captured."""

    config_class = PlayerConfig
    config: PlayerConfig

    def __init__(self, config: PlayerConfig | None = None) -> None:
        super().__init__(config)
        self._times_s: list[float] | None = None
        self._crop: tuple[int, int] | None = None

    def describe(self) -> str:
        return f"player {self.config.path}"

    def _on_open_container(self) -> None:
        if self._times_s is None:
            if sidecar_path(self.config.path).exists():
                rows = read_sidecar(self.config.path)
                t0 = rows[0][1] if rows else 0
                self._times_s = [(t - t0) / 1e9 for _, t in rows]
            else:
                log.warning("%s: no sidecar %s; using the MP4's timestamps", self.describe(),
                            sidecar_path(self.config.path).name)
                self._times_s = []
        comment = self._container.metadata.get("comment", "")
        try:
            meta = json.loads(comment) if comment else {}
            self._crop = (int(meta["width"]), int(meta["height"])) if "width" in meta else None
        except (ValueError, KeyError, TypeError):
            self._crop = None

    def _frame_time_s(self, av_frame: Any) -> float:
        times = self._times_s or []
        index = self._loop_index
        base = times[index] if index < len(times) else super()._frame_time_s(av_frame)
        return base / self.config.speed if self.config.speed > 0 else base

    def _to_image(self, av_frame: Any) -> np.ndarray:
        image = super()._to_image(av_frame)
        if self._crop is not None:
            width, height = self._crop
            if image.shape[1] != width or image.shape[0] != height:
                image = np.ascontiguousarray(image[:height, :width])
        return image
