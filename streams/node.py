"""Nodes for launch files: `SourceNode` publishes any source, `RecorderNode` records any stream.

    nodes:
      camera:
        class: streams.node:SourceNode
        params:
          source: {type: synthetic, width: 640, height: 480, fps: 30}   # or "camera:0", "clip.mp4", "rtsp://..."
          stream: camera
      recorder:
        class: streams.node:RecorderNode
        inputs: {frames: camera.frames}
        params: {path: runs/camera.mp4}

`SourceNode` connects in ``setup()`` (ready once the first frame is in), then
sends every new frame on ``frames`` as it is captured (the source paces it;
no ``rate_hz``). A camera or network stream that drops reconnects inside the
source with backoff; a source that fails for good fails the node, and the
launch file's restart policy decides what follows. At the end of a file the
node stops (``on_end: stop``) or waits for Stop (``on_end: idle``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from agentrt.errors import ConfigError, FrameTimeout, SourceError
from agentrt.messages import Frame, Message, now_ns
from agentrt.node import Idle, Node, latest
from streams._deps import import_av
from streams.recorder import Recorder, RecorderConfig
from streams.registry import make_config, make_source
from streams.source import Source, StreamEnded

__all__ = ["SourceNodeConfig", "SourceNode", "RecorderNodeConfig", "RecorderNode"]

_STATUS_EVERY_NS = 10_000_000_000
READ_TIMEOUT_MS = 200  # the longest a read waits: how late a stop request can be seen


@dataclass
class SourceNodeConfig:
    source: str | dict[str, Any] = "synthetic"  # a SOURCE string, or {type: ..., fields of its config}
    stream: str = "camera"  # the name on every frame
    on_end: str = "stop"  # at the end of a file: "stop" (the node exits) or "idle" (wait for Stop)
    params: dict[str, Any] = field(default_factory=dict)  # extra source config fields (override `source`)

    def __post_init__(self) -> None:
        if self.on_end not in ("stop", "idle"):
            raise ConfigError(f"SourceNodeConfig.on_end: expected 'stop' or 'idle', got {self.on_end!r}")
        self.source_config()  # validate now, before anything starts

    def source_config(self) -> Any:
        return make_config(self.source, **{"stream": self.stream, **self.params})


class SourceNode(Node):
    """Publishes the frames of any source (camera, file, stream, folder, synthetic, player) on ``frames``."""

    outputs = {"frames": latest("Frame")}
    Config = SourceNodeConfig

    @classmethod
    def preflight(cls, config: SourceNodeConfig) -> None:
        config.source_config().check_exists()  # a missing file: one line before anything starts

    def setup(self) -> None:
        self.source: Source = make_source(self.config.source, **{"stream": self.config.stream, **self.config.params})
        self.ended = ""  # why the stream ended, once it did
        self.source.connect()
        self.log.info("%s: %dx%d", self.source.describe(), self.source.width, self.source.height)

    def run(self) -> None:
        next_status = now_ns() + _STATUS_EVERY_NS
        for event in self.events(idle_ns=0):  # no inputs: each Idle turn reads the source (it paces itself)
            if not isinstance(event, Idle):
                continue
            try:
                self.publish_next()
            except StreamEnded as exc:
                self.ended = str(exc)
                self.note(self.ended)
                if self.config.on_end == "idle":
                    for _ in self.events():  # idle until Stop
                        pass
                return
            if now_ns() >= next_status:
                next_status = now_ns() + _STATUS_EVERY_NS
                s = self.source.stats
                self.log.info("%.1f fps, %d captured, dropped %d (replaced %d, skipped %d), reconnects %d",
                              s.fps, s.captured, s.dropped, s.replaced, s.skipped, s.reconnects)

    def publish_next(self) -> bool:
        """Read the next new frame (waiting at most ``READ_TIMEOUT_MS``) and send it; False when none came.

        Raises StreamEnded at the end of a file, SourceError when the source failed for good."""
        source = self.source
        try:
            frame = source.async_read(timeout_ms=READ_TIMEOUT_MS)
        except FrameTimeout:
            return False  # nothing new yet: the loop checks for stop and reads again
        except StreamEnded:
            raise
        except SourceError as exc:
            if not source.alive:
                raise
            self.note(str(exc), warning=True)  # it reconnects inside the source
            return False
        self.send("frames", frame)
        return True

    def note(self, text: str, *, warning: bool = False) -> None:
        """Say what happened to the source (the end of a file, a reconnect); `agentrt stream` prints it."""
        (self.log.warning if warning else self.log.info)("%s", text)

    def teardown(self) -> None:
        source = getattr(self, "source", None)
        if source is not None:
            source.disconnect()


@dataclass
class RecorderNodeConfig:
    path: str = "recording.mp4"  # the MP4; the sidecar goes beside it (<stem>.frames.csv)
    codec: str = "auto"  # "auto" = libx264 if available, else mpeg4
    crf: int = 23
    max_frames: int = 0  # stop recording after this many frames (0 = until Stop)

    def __post_init__(self) -> None:
        RecorderConfig(path=self.path, codec=self.codec, crf=self.crf)  # validates
        if self.max_frames < 0:
            raise ConfigError(f"RecorderNodeConfig.max_frames: expected >= 0, got {self.max_frames}")


class RecorderNode(Node):
    """Writes the frames arriving on ``frames`` to MP4 with a sidecar of capture times."""

    inputs = {"frames": latest("Frame")}
    Config = RecorderNodeConfig

    def setup(self) -> None:
        Path(self.config.path).parent.mkdir(parents=True, exist_ok=True)
        import_av()  # now, not on the first frame: that import took the first ~10-25 frames of a 30 fps stream
        self.recorder = Recorder(RecorderConfig(path=self.config.path, codec=self.config.codec, crf=self.config.crf))
        self.last_seq = -1
        self.missed = 0  # frames of the stream the recorder never saw (seq gaps)

    def on_input(self, name: str, message: Message) -> None:
        message = cast(Frame, message)  # the port's kind: the host drops any other
        c = self.config
        if c.max_frames and self.recorder.frames >= c.max_frames:
            return
        if self.last_seq >= 0 and message.seq > self.last_seq + 1:
            self.missed += message.seq - self.last_seq - 1
        self.last_seq = message.seq
        self.recorder.write(message)
        if c.max_frames and self.recorder.frames == c.max_frames:
            self.recorder.close()
            self.log.info("recorded %d frames to %s; stopped recording", c.max_frames, c.path)

    def teardown(self) -> None:
        recorder = getattr(self, "recorder", None)
        if recorder is not None:
            recorder.close()
            self.log.info("recorded %d frames to %s (%d frames of the stream not seen)",
                          recorder.frames, recorder.path, self.missed)
