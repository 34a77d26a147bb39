"""agentrt.mp4.Mp4Writer: the one MP4 writer (sim episode videos and the stream recorder)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from agentrt.mp4 import Mp4Options, Mp4Writer

av = pytest.importorskip("av")


def test_writer_pads_odd_sizes_keeps_pts_and_flushes_once(tmp_path: Path) -> None:
    path = tmp_path / "w.mp4"
    image = np.zeros((31, 45, 3), np.uint8)
    image[:, :20] = (200, 40, 40)
    options = Mp4Options(fps=10, codec="mpeg4", time_base=Fraction(1, 1000), metadata={"comment": "hello"})
    with Mp4Writer(path, options) as writer:
        for i in range(3):
            writer.write(image, pts=i * 250)  # 4 frames a second, whatever fps says
        writer.flush()
        writer.flush()  # a second flush is a no-op, and close() after it too
    assert (writer.codec, writer.size, writer.frames) == ("mpeg4", (46, 32), 3)
    with av.open(str(path)) as container:
        assert container.metadata.get("comment") == "hello"
        frames = list(container.decode(video=0))
    assert len(frames) == 3 and (frames[0].width, frames[0].height) == (46, 32)
    assert [round(float(f.time) * 1000) for f in frames] == [0, 250, 500]
    first = frames[0].to_ndarray(format="rgb24")
    assert abs(int(first[15, 5, 0]) - 200) < 20 and abs(int(first[15, 40, 0]) - 0) < 20


def test_an_unknown_codec_is_raised_to_the_caller(tmp_path: Path) -> None:
    writer = Mp4Writer(tmp_path / "x.mp4", Mp4Options(codec="no-such-codec"))
    with pytest.raises(ValueError):  # PyAV's UnknownCodecError; the recorder turns it into one line
        writer.write(np.zeros((8, 8, 3), np.uint8))
    assert not writer.is_open
    writer.close()
