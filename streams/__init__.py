"""streams: the processes that turn the world into Frame messages.

Sources (one Camera-style base class, `Source`; one table, `SOURCES`):

    from streams import make_source
    with make_source("synthetic:640x480@30") as source:     # or "camera:0", "clip.mp4", "rtsp://...", "photos/"
        frame = source.read()                              # Frame(stream, seq, t_capture_ns, image HxWx3 uint8)

Recording and replay: `Recorder` (MP4 + a sidecar of capture times) and
`PlayerSource` (replays a recording with its original timing). The command
line: `agentrt stream`, `agentrt record`, `agentrt view`. See docs/streams.md.
"""

from streams.camera import CameraConfig, OpenCVCamera
from streams.check import check_source
from streams.config import SourceConfig
from streams.feed import FrameFeed, open_feed
from streams.folder import FolderConfig, FolderSource
from streams.mjpeg import MJPEGServer
from streams.player import PlayerConfig, PlayerSource
from streams.recorder import Recorder, RecorderConfig, read_sidecar, sidecar_path
from streams.registry import SOURCES, make_config, make_source, parse_source
from streams.source import Source, SourceLost, StreamEnded
from streams.stats import SourceStats
from streams.synthetic import SyntheticConfig, SyntheticSource, read_stamp
from streams.video import VideoConfig, VideoSource

__all__ = [
    "Source",
    "SourceConfig",
    "SourceStats",
    "SourceLost",
    "StreamEnded",
    "CameraConfig",
    "OpenCVCamera",
    "VideoConfig",
    "VideoSource",
    "FolderConfig",
    "FolderSource",
    "SyntheticConfig",
    "SyntheticSource",
    "read_stamp",
    "PlayerConfig",
    "PlayerSource",
    "Recorder",
    "RecorderConfig",
    "read_sidecar",
    "sidecar_path",
    "SOURCES",
    "make_config",
    "make_source",
    "parse_source",
    "check_source",
    "FrameFeed",
    "open_feed",
    "MJPEGServer",
]
