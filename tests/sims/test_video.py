"""MP4 writing: decodable, even dimensions, yuv420p."""

from __future__ import annotations

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
