"""The synthetic source and image folders (real photos from scikit-image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentrt.errors import SourceError
from streams import (
    FolderConfig,
    FolderSource,
    StreamEnded,
    SyntheticConfig,
    SyntheticSource,
    check_source,
    read_stamp,
)


@pytest.mark.parametrize("pattern", ["shapes", "bars", "noise"])
def test_synthetic_patterns_pass_check_source(pattern: str) -> None:
    source = SyntheticSource(SyntheticConfig(width=160, height=120, fps=200, pattern=pattern))
    report = check_source(source)
    assert (report["width"], report["height"], report["fps"]) == (160, 120, 200.0)


def test_synthetic_frames_carry_their_seq_and_move() -> None:
    with SyntheticSource(SyntheticConfig(width=200, height=100, fps=0, frames=12)) as source:
        frames = []
        with pytest.raises(StreamEnded, match="after 12 frames"):
            while True:
                frames.append(source.read())
    assert [f.seq for f in frames] == list(range(12))  # fps=0: every frame, nothing dropped
    assert [read_stamp(f.image) for f in frames] == list(range(12))
    assert frames[0].image.shape == (100, 200, 3) and frames[0].image.dtype == np.uint8
    assert not np.array_equal(frames[1].image[20:], frames[2].image[20:])  # the shapes moved


def test_synthetic_bgr_is_the_rgb_image_reversed() -> None:
    rgb = SyntheticSource(SyntheticConfig(width=64, height=32, fps=0, pattern="bars"))
    bgr = SyntheticSource(SyntheticConfig(width=64, height=32, fps=0, pattern="bars", pixel_format="bgr"))
    with rgb, bgr:
        a, b = rgb.read(), bgr.read()
    assert a.pixel_format == "rgb" and b.pixel_format == "bgr"
    np.testing.assert_array_equal(a.image[..., ::-1], b.image)


def test_folder_plays_real_photos_in_name_order(photos: Path) -> None:
    source = FolderSource(FolderConfig(path=str(photos), fps=0))
    with source:
        frames = []
        with pytest.raises(StreamEnded, match="after 4 images"):
            while True:
                frames.append(source.read())
    assert len(frames) == 4
    # astronaut 512x512 and coffee 400x600, scaled by 1/4
    assert frames[0].image.shape == (128, 128, 3) and frames[1].image.shape == (100, 150, 3)
    astronaut = frames[0].image
    assert astronaut[..., 0].mean() != astronaut[..., 2].mean()  # a real colour photo, in RGB


def test_folder_loops_and_passes_check_source(photos: Path) -> None:
    source = FolderSource(FolderConfig(path=str(photos), fps=500, loop=True, pattern="0[02]_*"))
    check_source(source, frames=6)  # only 2 files match: 6 frames need the loop


def test_folder_errors_name_the_problem(tmp_path: Path, photos: Path) -> None:
    with pytest.raises(SourceError, match="no such folder"):
        FolderSource(FolderConfig(path=str(tmp_path / "missing"))).connect()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        FolderSource(FolderConfig(path=str(tmp_path / "empty"))).connect()
    (photos / "00_astronaut.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(SourceError, match="cannot read image 00_astronaut.png"):
        FolderSource(FolderConfig(path=str(photos), fps=0)).connect()
