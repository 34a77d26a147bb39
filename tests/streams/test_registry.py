"""Config validation, the type table, and SOURCE strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.errors import ConfigError
from streams import (
    SOURCES,
    CameraConfig,
    FolderSource,
    OpenCVCamera,
    PlayerSource,
    SyntheticConfig,
    SyntheticSource,
    VideoConfig,
    VideoSource,
    make_config,
    make_source,
    parse_source,
)
from streams.registry import parse_overrides


def test_the_table_names_every_source() -> None:
    assert SOURCES == {"camera": OpenCVCamera, "file": VideoSource, "folder": FolderSource,
                       "synthetic": SyntheticSource, "player": PlayerSource}
    # one config class per source: make_source finds a config's class by its type alone
    assert len({cls.config_class for cls in SOURCES.values()}) == len(SOURCES)


@pytest.mark.parametrize(("spec", "expected"), [
    ("synthetic", {"type": "synthetic"}),
    ("synthetic:640x480@30", {"type": "synthetic", "width": 640, "height": 480, "fps": 30.0}),
    ("synthetic:bars:320x240", {"type": "synthetic", "pattern": "bars", "width": 320, "height": 240}),
    ("synthetic:@15", {"type": "synthetic", "fps": 15.0}),
    ("camera:0", {"type": "camera", "device": 0}),
    ("camera:2:1280x720@60", {"type": "camera", "device": 2, "width": 1280, "height": 720, "fps": 60.0}),
    ("/dev/video1", {"type": "camera", "device": "/dev/video1"}),
    ("rtsp://10.0.0.2:554/s1", {"type": "file", "path": "rtsp://10.0.0.2:554/s1"}),
    ("https://example.com/live.m3u8", {"type": "file", "path": "https://example.com/live.m3u8"}),
    ("clip.mp4", {"type": "file", "path": "clip.mp4"}),
    ("file:weird", {"type": "file", "path": "weird"}),
    ("player:run.mp4", {"type": "player", "path": "run.mp4"}),
])
def test_parse_source(spec: str, expected: dict) -> None:
    assert parse_source(spec) == expected


def test_parse_source_by_what_is_on_disk(tmp_path: Path) -> None:
    (tmp_path / "rec.mp4").write_bytes(b"")
    (tmp_path / "rec.frames.csv").write_text("index,seq,t_capture_ns,pts_us\n")
    assert parse_source(str(tmp_path)) == {"type": "folder", "path": str(tmp_path)}
    assert parse_source(str(tmp_path / "rec.mp4"))["type"] == "player"  # a recording with its sidecar
    with pytest.raises(ConfigError, match="not a file, folder, URL or known type"):
        parse_source("no_such_thing")
    with pytest.raises(ConfigError, match="WIDTHxHEIGHT@FPS"):
        parse_source("synthetic:big")


def test_configs_validate_naming_field_expected_and_given() -> None:
    with pytest.raises(ConfigError, match=r"SyntheticConfig.width: expected int, got '640' \(str\)"):
        SyntheticConfig(width="640")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="SyntheticConfig.fps: expected >= 0"):
        SyntheticConfig(fps=-1)
    with pytest.raises(ConfigError, match="pattern: expected one of"):
        SyntheticConfig(pattern="plaid")
    with pytest.raises(ConfigError, match="expected bool"):
        VideoConfig(path="a.mp4", loop=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="pixel_format"):
        CameraConfig(pixel_format="yuv")
    with pytest.raises(ConfigError, match="timeout_ms: expected > 0"):
        CameraConfig(timeout_ms=0)
    with pytest.raises(ConfigError, match="cannot loop"):
        VideoConfig(path="rtsp://h/s", loop=True)
    assert SyntheticConfig(fps=30).fps == 30.0 and isinstance(SyntheticConfig(fps=30).fps, float)
    assert CameraConfig(device="/dev/video0").device == "/dev/video0"


def test_make_config_and_unknown_fields() -> None:
    config = make_config({"type": "synthetic", "width": 64, "height": 48}, fps=5)
    assert isinstance(config, SyntheticConfig) and (config.width, config.height, config.fps) == (64, 48, 5.0)
    with pytest.raises(ConfigError, match="unknown field.*colour"):
        make_config("synthetic", colour="red")
    with pytest.raises(ConfigError, match="source type: expected one of"):
        make_config({"type": "webcam"})
    source = make_source("synthetic:32x16@10")
    assert isinstance(source, SyntheticSource) and not source.is_connected


def test_parse_overrides_reads_values_as_yaml() -> None:
    assert parse_overrides(["fps=15", "loop=true", "device=/dev/video2", "stream=cam0", "x=1.5"]) == {
        "fps": 15, "loop": True, "device": "/dev/video2", "stream": "cam0", "x": 1.5}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["fps"])
