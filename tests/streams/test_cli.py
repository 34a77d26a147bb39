"""`agentrt stream`, `agentrt record`, `agentrt view` end to end, and the MJPEG page."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agentrt.cli.__main__ import main
from agentrt.codecs import jpeg_size
from agentrt.messages import Frame, now_ns
from streams import read_sidecar, read_stamp
from streams.mjpeg import MJPEGServer

from .conftest import stamped_images


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    monkeypatch.setenv("AGENTRT_RUN_DIR", str(folder))
    return folder


@pytest.fixture
def publisher(run_dir: Path) -> Iterator[subprocess.Popen]:
    """`agentrt stream synthetic:160x128@30 --name cam` in a child process, for 20 s at most."""
    env = {**os.environ, "AGENTRT_RUN_DIR": str(run_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "agentrt.cli", "stream", "synthetic:160x128@30", "--name", "cam", "--duration", "20"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        first = ""
        while "publishing" not in first and process.poll() is None:
            first = process.stdout.readline()
        assert "publishing synthetic shapes 160x128@30" in first and "as 'cam'" in first, first
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def test_stream_then_record_then_replay_then_view(publisher: subprocess.Popen, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cam.mp4"
    assert main(["record", "cam", "--out", str(out), "--frames", "15", "--quiet"]) == 0
    assert "wrote 15 frames" in capsys.readouterr().out
    rows = read_sidecar(out)
    assert len(rows) == 15 and [s for s, _ in rows] == sorted(s for s, _ in rows)
    # SIGTERM stops the publisher cleanly, with its closing status line
    publisher.terminate()
    text, _ = publisher.communicate(timeout=10)
    assert publisher.returncode == 0 and "cam: done" in text and "dropped" in text

    shots = tmp_path / "shots"
    assert main(["view", "--source", str(out), "--set", "speed=0", "--save", str(shots), "--frames", "3"]) == 0
    saved = sorted(shots.glob("*.png"))
    assert len(saved) == 3
    import cv2

    image = cv2.imread(str(saved[0]))
    assert image.shape == (128, 160, 3) and read_stamp(image) == rows[0][0] % 65536


def test_stream_a_file_and_a_recording_from_the_cli(run_dir: Path, clip: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", str(clip), "--name", "f", "--fast", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "publishing file" in text and "end of file after 30 frames" in text and "sent 30" in text
    rec = tmp_path / "rec.mp4"
    assert main(["record", "--source", "synthetic:160x128@200", "--out", str(rec), "--frames", "10", "--quiet"]) == 0
    assert main(["stream", str(rec), "--name", "p", "--fast", "--quiet"]) == 0  # a recording plays as `player`
    text = capsys.readouterr().out
    assert "publishing player" in text and "sent 10" in text


def test_stream_errors_are_one_line(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", str(tmp_path / "missing.mp4"), "--duration", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    assert main(["stream", "synthetic", "--set", "colour=red"]) == 2
    assert "unknown field(s) colour" in capsys.readouterr().err


def test_view_serves_an_mjpeg_page(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", "--source", "synthetic:160x128@100", "--mjpeg", "--port", "0", "--frames", "5"]) == 0
    assert "open http://127.0.0.1:" in capsys.readouterr().out


def test_mjpeg_server() -> None:
    with MJPEGServer(port=0, title="cam") as server:
        page = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert '<img src="/stream.mjpg"' in page
        for i, image in enumerate(stamped_images(3)):
            server.update(Frame("cam", i, now_ns(), image))
        jpeg = urllib.request.urlopen(server.url + "frame.jpg", timeout=5).read()
        assert jpeg_size(memoryview(jpeg))[:2] == (160, 128)
        with urllib.request.urlopen(server.url + "stream.mjpg", timeout=5) as stream:
            assert "multipart/x-mixed-replace" in stream.headers["Content-Type"]
            server.update(Frame("cam", 3, now_ns(), np.zeros((128, 160, 3), np.uint8)))
            head = stream.read(200)
        assert head.startswith(b"--agentrtframe\r\nContent-Type: image/jpeg")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(server.url + "nope", timeout=5)


def test_stream_over_tcp_with_jpeg(tmp_path: Path, run_dir: Path) -> None:
    env = {**os.environ, "AGENTRT_RUN_DIR": str(run_dir)}
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "agentrt.cli", "stream", "synthetic:160x128@30", "--endpoint", f"tcp://127.0.0.1:{port}",
         "--jpeg", "--duration", "20", "--quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        from streams.feed import open_feed

        with open_feed(f"tcp://127.0.0.1:{port}") as feed:
            frame = None
            deadline = time.monotonic() + 15
            while frame is None and time.monotonic() < deadline:
                frame = feed.next(timeout_ms=500)
        assert frame is not None and frame.image.shape == (128, 160, 3) and frame.stream == "camera"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_view_window_without_a_display_says_what_to_do(run_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["view", "--source", "synthetic:64x48@30", "--window", "--frames", "1"]) == 2
    assert "no display" in capsys.readouterr().err


def test_a_killed_recording_plays_up_to_the_kill(run_dir: Path, tmp_path: Path) -> None:
    """kill -9 mid-recording: the MP4 (fragmented, flushed as it goes) decodes, in the sidecar's order."""
    import av

    out = tmp_path / "killed.mp4"
    process = subprocess.Popen(
        [sys.executable, "-m", "agentrt.cli", "record", "--source", "synthetic:160x128@30", "--out", str(out), "--quiet",
         "--crf", "0"],  # lossless: every stamp reads back exactly
        env={**os.environ, "AGENTRT_RUN_DIR": str(run_dir)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        rows: list[tuple[int, int]] = []
        deadline = time.monotonic() + 60
        while len(rows) < 90 and process.poll() is None and time.monotonic() < deadline:  # the sidecar flushes every 30
            time.sleep(0.1)
            rows = read_sidecar(out) if out.with_name("killed.frames.csv").exists() else []
        assert process.poll() is None and len(rows) >= 90, process.stderr.read() if process.stderr else ""
        process.kill()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
    with av.open(str(out)) as container:
        stamps = [read_stamp(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    rows = read_sidecar(out)
    assert len(stamps) > 0
    assert stamps == [seq % 65536 for seq, _ in rows[: len(stamps)]]


def test_a_second_stream_of_the_same_name_is_refused_and_the_first_still_delivers(
    publisher: subprocess.Popen, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["stream", "synthetic:64x48@30", "--name", "cam", "--duration", "1", "--quiet"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and f"in use by pid {publisher.pid}:" in err[0] and "another name" in err[0], err
    assert "publishing" not in captured.out
    out = tmp_path / "first.mp4"
    assert main(["record", "cam", "--out", str(out), "--frames", "5", "--quiet", "--timeout-s", "10"]) == 0
    assert len(read_sidecar(out)) == 5


def test_view_and_record_say_when_nothing_comes(run_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """No publisher: both give up after --timeout-s with one error line and a non-zero status."""
    assert main(["view", "nobody", "--save", str(tmp_path / "shots"), "--timeout-s", "0.5"]) == 1
    captured = capsys.readouterr()
    assert "saved" not in captured.out  # nothing was
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "no frame from" in err[0] and "nobody" in err[0], err
    assert main(["record", "nobody", "--out", str(tmp_path / "x.mp4"), "--timeout-s", "0.5", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no frame from" in err[0], err
    assert not (tmp_path / "x.mp4").exists()


def test_record_gives_up_on_a_silent_stream(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "nobody", "--out", str(tmp_path / "x.mp4"), "--wait", "0.5", "--quiet"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "no frame from" in err[0] and "nothing written" in err[0]
    assert "wrote" not in captured.out
