"""Video files and network streams through PyAV: clips written by the tests, a local HTTP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.errors import SourceError
from streams import StreamEnded, VideoConfig, VideoSource, check_source, read_stamp

from .conftest import REAL_VIDEOS, H, W, write_clip


def read_all(source: VideoSource, limit: int = 1000) -> list:
    frames = []
    with pytest.raises(StreamEnded):
        while len(frames) < limit:
            frames.append(source.read())
    return frames


def test_file_as_fast_as_read_delivers_every_frame_in_order(clip: Path) -> None:
    source = VideoSource(VideoConfig(path=str(clip), realtime=False))
    with source:
        assert (source.width, source.height, source.fps) == (W, H, 30.0)
        frames = read_all(source)
    assert [f.seq for f in frames] == list(range(30))
    assert [read_stamp(f.image) for f in frames] == list(range(30))  # decoded, in order, none dropped
    assert frames[0].image.shape == (H, W, 3) and frames[0].pixel_format == "rgb"
    assert source.stats.dropped == 0 and source.state == "ended"


def test_file_paced_passes_check_source_and_loops(clip: Path) -> None:
    check_source(VideoSource(VideoConfig(path=str(clip))))
    short = write_clip(clip.with_name("short.mp4"), count=4, fps=120)
    with VideoSource(VideoConfig(path=str(short), loop=True)) as source:
        frames = [source.read() for _ in range(10)]
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    stamps = [read_stamp(f.image) for f in frames]
    wraps = sum(b < a for a, b in zip(stamps, stamps[1:], strict=False))
    assert set(stamps) <= {0, 1, 2, 3} and wraps >= 2  # 10 frames of a 4-frame clip: round at least twice


def test_bgr_frames_are_marked_bgr(clip: Path) -> None:
    rgb = VideoSource(VideoConfig(path=str(clip), realtime=False))
    bgr = VideoSource(VideoConfig(path=str(clip), realtime=False, pixel_format="bgr"))
    with rgb, bgr:
        a, b = rgb.read(), bgr.read()
    assert b.pixel_format == "bgr"
    assert abs(int(a.image[..., 0].mean()) - int(b.image[..., 2].mean())) <= 1


def test_missing_and_corrupt_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        VideoSource(VideoConfig(path=str(tmp_path / "missing.mp4"))).connect()
    with pytest.raises(SourceError, match="a folder, not a video file"):
        VideoSource(VideoConfig(path=str(tmp_path))).connect()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with pytest.raises(SourceError, match="not a video file or corrupt"):
        VideoSource(VideoConfig(path=str(bad))).connect()


def test_truncated_file_ends_or_fails_clearly(clip: Path) -> None:
    data = clip.read_bytes()
    cut = clip.with_name("cut.mp4")
    cut.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: unreadable
    with pytest.raises(SourceError, match="cut.mp4"):
        source = VideoSource(VideoConfig(path=str(cut), realtime=False))
        with source:
            read_all(source)
            raise SourceError(f"{cut}: read to the end")  # also fine: what was there played, then it ended


def faststart_clip(path: Path, count: int = 60) -> Path:
    """A clip whose index (moov) comes first, as web-ready MP4s are written (``-movflags faststart``)."""
    import av

    from .conftest import stamped_images

    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for image in stamped_images(count):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert path.read_bytes().find(b"moov") < path.read_bytes().find(b"mdat")
    return path


@pytest.mark.parametrize("paced", [False, True])
def test_a_faststart_mp4_cut_in_half_is_reported_as_truncated_not_as_its_end(tmp_path: Path, paced: bool) -> None:
    whole = faststart_clip(tmp_path / "whole.mp4")
    data = whole.read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    with VideoSource(VideoConfig(path=str(whole), realtime=False)) as source:
        assert len(read_all(source)) == 60  # the whole file ends normally
    frames = []
    with VideoSource(VideoConfig(path=str(half), realtime=paced, loop=paced)) as source:
        with pytest.raises(SourceError, match="half.mp4: truncated") as caught:
            while len(frames) < 1000:
                frames.append(source.read())
        assert not isinstance(caught.value, StreamEnded)
        assert source.state == "failed" and "truncated" in source.stats.last_error
    assert 0 < len(frames) < 60  # every frame before the cut was delivered, then it said so
    assert [read_stamp(f.image) for f in frames] == list(range(len(frames)))


def test_http_stream(clip: Path, http_server: tuple) -> None:
    url, _ = http_server
    write_clip(clip.with_name("live.ts"), count=20, container_format="mpegts")
    source = VideoSource(VideoConfig(path=f"{url}/live.ts", realtime=False, reconnect_attempts=0))
    assert source.network
    with source:
        frames = [source.read() for _ in range(10)]
    assert [read_stamp(f.image) for f in frames] == list(range(10))


def test_flaky_network_stream_reconnects(clip: Path, http_server: tuple) -> None:
    url, handler = http_server
    ts = write_clip(clip.with_name("flaky.ts"), count=40, container_format="mpegts")
    handler.truncate_first["/flaky.ts"] = ts.stat().st_size // 3  # the first connection drops a third of the way in
    source = VideoSource(VideoConfig(path=f"{url}/flaky.ts", realtime=False, reconnect_backoff_s=0.05,
                                     timeout_ms=3000))
    stamps = []
    with source:
        while len(stamps) < 45:
            try:
                stamps.append(read_stamp(source.async_read(timeout_ms=5000).image))
            except SourceError:
                assert source.alive, source.stats.last_error
    assert source.stats.reconnects >= 1 and "flaky.ts" in source.stats.last_error  # I/O error or end of stream
    assert handler.served["/flaky.ts"] >= 2
    # After the reconnect the stream starts over: the frame numbers fall back, and are
    # increasing on both sides (a busy machine may skip frames, latest-only, but never reorders them).
    falls = [i for i in range(1, len(stamps)) if stamps[i] <= stamps[i - 1]]
    assert falls and stamps[falls[0]] < 10  # (a third play, after the end of the second, may add a fall)


def test_stalled_network_stream_is_caught_by_the_timeout_and_reconnected(clip: Path, http_server: tuple) -> None:
    url, handler = http_server
    ts = write_clip(clip.with_name("stall.ts"), count=40, container_format="mpegts")
    handler.truncate_first["/stall.ts"] = ts.stat().st_size // 3
    handler.stall_first_s = 4.0  # the first connection goes silent, without closing
    source = VideoSource(VideoConfig(path=f"{url}/stall.ts", realtime=False, reconnect_backoff_s=0.05,
                                     timeout_ms=400))
    stamps, errors = [], []
    with source:
        while len(stamps) < 45:
            try:
                stamps.append(read_stamp(source.async_read(timeout_ms=3000).image))
            except SourceError as exc:
                assert source.alive, source.stats.last_error
                errors.append(str(exc))
    assert source.stats.reconnects >= 1 and handler.served["/stall.ts"] >= 2
    assert stamps.index(0, 1) > 0  # played part, stalled, reconnected, started over


def test_unreachable_stream_fails_after_bounded_retries() -> None:
    source = VideoSource(VideoConfig(path="http://127.0.0.1:9/none.ts", timeout_ms=500))
    with pytest.raises(SourceError, match="cannot open"):
        source.connect()


@pytest.mark.skipif(not REAL_VIDEOS.is_dir(), reason=f"real clips not found at {REAL_VIDEOS}")
def test_real_camera_clips() -> None:
    with VideoSource(VideoConfig(path=str(REAL_VIDEOS / "milk.mkv"), realtime=False)) as source:
        frames = read_all(source)
    assert len(frames) == 51 and frames[0].image.shape == (480, 640, 3)
    with VideoSource(VideoConfig(path=str(REAL_VIDEOS / "car-detection.mp4"), realtime=False)) as source:
        assert source.fps == pytest.approx(12.5)
        assert source.read().image.shape == (432, 768, 3)


def test_live_streams_are_latest_only_never_paced_or_held_back() -> None:
    live = VideoSource(VideoConfig(path="rtsp://127.0.0.1:8554/cam", realtime=False))
    assert live.live and not live._paced  # decided by the scheme, before any I/O
    http = VideoSource(VideoConfig(path="http://127.0.0.1/clip.mp4"))
    assert not http.live  # until connect() finds no duration
