"""What a person sees: the web page (/frame.jpg), `agentrt view` (window and PNG files, MJPEG page) show one
picture the same whatever pixel_format the camera sends, depth and 16-bit frames included."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pytest

from agentrt.cli.view import _Saver
from agentrt.messages import Frame
from agentrt.web.server import QAServer
from streams.mjpeg import MJPEGServer

cv2 = pytest.importorskip("cv2")


def _picture() -> np.ndarray:
    image = np.full((48, 64, 3), 128, np.uint8)
    image[8:24, 8:40] = (220, 20, 20)  # red, in RGB
    image[28:44, 24:56] = (20, 20, 220)  # blue
    return image


def _shown(frames: list[Frame], tmp_path: Path) -> tuple[list[bytes], list[bytes], list[np.ndarray]]:
    """For each frame: the web page's JPEG, the MJPEG page's JPEG, and the PNG `agentrt view --save` wrote."""
    web, mjpeg, png = [], [], []
    page = QAServer(port=0, answer_timeout_s=5)
    page.start()
    try:
        with MJPEGServer(port=0) as viewer:
            for i, frame in enumerate(frames):
                page.update(frame)
                with urllib.request.urlopen(page.url + "frame.jpg", timeout=10) as reply:
                    web.append(reply.read())
                viewer.update(frame)
                mjpeg.append(viewer.next_jpeg(i, timeout_s=5)[1] or b"")
                saver = _Saver(str(tmp_path / f"shots{i}"), 1)
                saver.show(frame)
                [path] = (tmp_path / f"shots{i}").iterdir()
                png.append(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
    finally:
        page.close()
    return web, mjpeg, png


def test_rgb_and_bgr_versions_of_one_picture_look_the_same(tmp_path: Path) -> None:
    rgb = _picture()
    alpha = np.full((48, 64, 1), 255, np.uint8)
    frames = [Frame("cam", 0, 0, rgb), Frame("cam", 1, 1, np.ascontiguousarray(rgb[..., ::-1]), "bgr"),
              Frame("cam", 2, 2, np.concatenate([rgb, alpha], axis=2), "rgba"),
              Frame("cam", 3, 3, np.concatenate([rgb[..., ::-1], alpha], axis=2), "bgra")]
    web, mjpeg, png = _shown(frames, tmp_path)
    assert len(set(web)) == 1 and len(set(mjpeg)) == 1  # byte for byte
    assert all(np.array_equal(p, rgb[..., ::-1]) for p in png)  # PNG files hold the picture exactly (BGR on disk)
    decoded = cv2.imdecode(np.frombuffer(web[0], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert decoded[16, 24].argmax() == 0 and decoded[36, 40].argmax() == 2  # and the red square is red, not blue


def test_depth_and_16_bit_frames_show_too(tmp_path: Path) -> None:
    depth = np.linspace(0.2, 3.0, 48 * 64, dtype=np.float32).reshape(48, 64, 1)  # metres
    colour16 = (_picture().astype(np.uint16) * 257)  # a 16-bit camera
    web, mjpeg, png = _shown([Frame("depth", 0, 0, depth, "depth"), Frame("cam", 1, 1, colour16, "rgb")], tmp_path)
    assert all(j[:2] == b"\xff\xd8" for j in web + mjpeg)
    assert [p.dtype for p in png] == [np.uint8, np.uint8] and png[0].shape == (48, 64, 3)
    assert png[0][0, 0].tolist() == [17, 17, 17] and png[0][-1, -1].tolist() == [255, 255, 255]  # near dark, far bright
    assert np.array_equal(png[1], _picture()[..., ::-1])  # 16 bits shown as their top 8
