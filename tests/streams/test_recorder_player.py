"""The recorder (MP4 + sidecar of capture times) and the player that replays with the original timing."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest

from agentrt.errors import ConfigError
from agentrt.messages import Frame, now_ns
from streams import (
    PlayerConfig,
    PlayerSource,
    Recorder,
    RecorderConfig,
    StreamEnded,
    check_source,
    read_sidecar,
    read_stamp,
    sidecar_path,
)

from .conftest import stamped_images


def recorded(path: Path, seqs: list[int], gaps_ms: list[float], width: int = 161, height: int = 129,
             pixel_format: str = "rgb") -> list[Frame]:
    """Record frames with the given seqs, captured gaps_ms apart (synthetic times), to ``path``."""
    images = stamped_images(len(seqs), width, height)
    t = 10_000_000_000
    frames = []
    with Recorder(RecorderConfig(path=str(path))) as recorder:
        for i, (seq, image) in enumerate(zip(seqs, images, strict=True)):
            t += int(gaps_ms[i - 1] * 1e6) if i else 0
            pixels = np.ascontiguousarray(image[..., ::-1]) if pixel_format == "bgr" else image
            frame = Frame("cam", seq, t, pixels, pixel_format)
            recorder.write(frame)
            frames.append(frame)
    return frames


def test_recording_has_a_sidecar_with_every_seq_and_capture_time(tmp_path: Path) -> None:
    path = tmp_path / "run1.mp4"
    frames = recorded(path, [3, 4, 5, 8, 9], [20, 20, 60, 20])  # 6 and 7 were never seen
    assert path.stat().st_size > 0 and sidecar_path(path) == tmp_path / "run1.frames.csv"
    assert read_sidecar(path) == [(f.seq, f.t_capture_ns) for f in frames]
    with sidecar_path(path).open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["pts_us"]) for r in rows] == [0, 20_000, 40_000, 100_000, 120_000]  # capture times as pts


def test_player_replays_with_the_original_timing(tmp_path: Path) -> None:
    path = tmp_path / "run.mp4"
    gaps_ms = [10, 10, 250, 10, 10]  # a quarter-second hole after the third frame
    recorded(path, list(range(6)), gaps_ms)
    with PlayerSource(PlayerConfig(path=str(path))) as player:
        assert (player.width, player.height) == (161, 129)  # odd size padded by the recorder, cropped back
        frames = []
        with pytest.raises(StreamEnded):
            while True:
                frames.append(player.read())
    stamps = [read_stamp(f.image) for f in frames]
    assert stamps == sorted(stamps) and set(stamps) <= set(range(6))  # a late frame may be skipped, never reordered
    before = max(f.t_capture_ns for f in frames if read_stamp(f.image) <= 2)
    after = min(f.t_capture_ns for f in frames if read_stamp(f.image) >= 3)
    assert (after - before) / 1e6 >= 240  # the hole is kept: pacing can be late, never early
    assert player._times_s is not None
    assert np.allclose(np.diff(player._times_s) * 1e3, gaps_ms)


def test_player_fast_and_looping(tmp_path: Path) -> None:
    path = tmp_path / "run.mp4"
    recorded(path, list(range(4)), [500, 500, 500])
    with PlayerSource(PlayerConfig(path=str(path), speed=0)) as player:  # as fast as read: no waiting
        assert [read_stamp(player.read().image) for _ in range(4)] == [0, 1, 2, 3]
    check_source(PlayerSource(PlayerConfig(path=str(path), speed=0, loop=True)), frames=9)


def test_player_without_sidecar_uses_the_mp4_timestamps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "run.mp4"
    recorded(path, list(range(3)), [40, 80])
    sidecar_path(path).unlink()
    with caplog.at_level(logging.WARNING), PlayerSource(PlayerConfig(path=str(path), speed=0)) as player:
        player.read()
        assert player._times_s == []
    assert "no sidecar" in caplog.text


def test_recorder_takes_bgr_gray_and_resizes_odd_frames(tmp_path: Path) -> None:
    path = tmp_path / "bgr.mp4"
    recorded(path, [0, 1], [30], pixel_format="bgr")
    with PlayerSource(PlayerConfig(path=str(path), speed=0)) as player:
        assert read_stamp(player.read().image) == 0
    gray_path = tmp_path / "gray.mp4"
    with Recorder(RecorderConfig(path=str(gray_path))) as recorder:
        recorder.write(Frame("g", 0, now_ns(), np.full((32, 48, 1), 200, np.uint8)))
        recorder.write(Frame("g", 1, now_ns(), np.full((64, 96, 3), 100, np.uint8)))  # another size: resized
    assert recorder.frames == 2
    with PlayerSource(PlayerConfig(path=str(gray_path), speed=0)) as player:
        image = player.read().image
    assert image.shape == (32, 48, 3) and abs(int(image.mean()) - 200) < 8


def test_recorder_errors(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ConfigError, match="cannot create the folder"):
        Recorder(RecorderConfig(path=str(tmp_path / "a_file" / "x.mp4"))).write(
            Frame("c", 0, now_ns(), np.zeros((8, 8, 3), np.uint8)))
    nested = Recorder(RecorderConfig(path=str(tmp_path / "new" / "dir" / "x.mp4")))  # missing folders are made
    nested.write(Frame("c", 0, now_ns(), np.zeros((8, 8, 3), np.uint8)))
    nested.close()
    assert (tmp_path / "new" / "dir" / "x.mp4").stat().st_size > 0
    with pytest.raises(ConfigError, match="crf"):
        RecorderConfig(crf=99)


@pytest.mark.parametrize("pixel_format", ["bgra", "rgba", "bgr", "gray"])
def test_recorded_colours_are_the_frames_colours_whatever_its_pixel_format(tmp_path: Path, pixel_format: str) -> None:
    """The recorder reads a frame's channels as `agentrt.pixels.to_rgb` does (BGRA was written as RGBA)."""
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:, :32] = (220, 30, 30)  # red | blue: swapped channels would show blue | red
    rgb[:, 32:] = (30, 30, 220)
    if pixel_format == "gray":
        rgb[:] = 90
    image = {"bgra": np.dstack([rgb[..., ::-1], np.full((64, 64), 255, np.uint8)]),
             "rgba": np.dstack([rgb, np.full((64, 64), 7, np.uint8)]),
             "bgr": rgb[..., ::-1], "gray": rgb[..., :1]}[pixel_format]
    path = tmp_path / f"{pixel_format}.mp4"
    with Recorder(RecorderConfig(path=str(path))) as recorder:
        recorder.write(Frame("cam", 0, now_ns(), np.ascontiguousarray(image), pixel_format))
    with PlayerSource(PlayerConfig(path=str(path), speed=0)) as player:
        decoded = player.read().image
    assert decoded.shape == rgb.shape
    assert np.abs(decoded[8:-8, 4:28].astype(int) - rgb[8:-8, 4:28]).max() < 20
    assert np.abs(decoded[8:-8, 36:60].astype(int) - rgb[8:-8, 36:60]).max() < 20


def test_an_unknown_codec_is_one_line(tmp_path: Path) -> None:
    recorder = Recorder(RecorderConfig(path=str(tmp_path / "x.mp4"), codec="no-such-codec"))
    with pytest.raises(ConfigError, match=r"cannot write .*x.mp4 with codec no-such-codec"):
        recorder.write(Frame("c", 0, now_ns(), np.zeros((8, 8, 3), np.uint8)))
    recorder.close()
