"""MP4 writing: decodable, even dimensions, yuv420p."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

av = __import__("pytest").importorskip("av")

from sims.video import VideoWriter  # noqa: E402


def test_writes_a_decodable_mp4_with_even_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "clip.mp4"
    with VideoWriter(path, fps=20.0, min_side=0) as video:
        for i in range(10):
            frame = np.zeros((45, 63, 3), np.uint8)  # odd sizes: padded to 46 x 64
            frame[:, : 6 * i + 1] = (200, 30, 30)
            video.write(frame)
    assert video.codec in ("libx264", "mpeg4")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (64, 46)
        frames = list(container.decode(video=0))
    assert len(frames) == 10
    assert frames[0].format.name == "yuv420p"


def test_small_frames_are_enlarged_by_a_whole_factor(tmp_path: Path) -> None:
    path = tmp_path / "small.mp4"
    with VideoWriter(path, fps=20.0) as video:  # min_side 256: a 64 x 48 frame becomes 384 x 288 (factor 6)
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:24] = 255
        video.write(frame)
    with av.open(str(path)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert image.shape == (288, 384, 3)
    assert image[:130].mean() > 200 and image[160:].mean() < 50  # the top half stays white, the bottom black


def test_closing_an_unused_writer_writes_nothing(tmp_path: Path) -> None:
    VideoWriter(tmp_path / "none.mp4", fps=10).close()
    assert not (tmp_path / "none.mp4").exists()


def test_a_video_killed_mid_episode_plays_up_to_the_kill(tmp_path: Path) -> None:
    """kill -9 of the writing process (a sim node killed mid-episode): the frames written so far decode."""
    path = tmp_path / "episode.mp4"
    count = tmp_path / "count"
    script = (
        "import sys, time, numpy as np\n"
        "from pathlib import Path\n"
        "from sims.video import VideoWriter\n"
        "video = VideoWriter(sys.argv[1], fps=20.0, min_side=0)\n"
        "for i in range(100000):\n"
        "    frame = np.full((48, 64, 3), 10 + 8 * (i % 30), np.uint8)  # a grey level per frame\n"
        "    video.write(frame)\n"
        "    Path(sys.argv[2]).write_text(str(i + 1))\n"
        "    time.sleep(0.01)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(path), str(count)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            written = count.read_text() if count.exists() else ""  # read once: the writer truncates, then writes
            if written.isdigit() and int(written) >= 100:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        process.kill()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) > 0
    levels = [round((float(f.mean()) - 10) / 8) for f in frames]
    assert levels == [i % 30 for i in range(len(frames))]  # the frames as written, in order
