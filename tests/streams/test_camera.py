"""The OpenCV camera class, tested through OpenCV's own file and URL handling (no device needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentrt.errors import SourceError
from streams import CameraConfig, OpenCVCamera, check_source, read_stamp

from .conftest import H, W

pytest.importorskip("cv2")


def test_camera_from_a_file_passes_check_source_and_reports_actual_values(clip: Path) -> None:
    camera = OpenCVCamera(CameraConfig(device=str(clip), width=1920, height=1080, fps=60))
    report = check_source(camera)
    assert (report["width"], report["height"]) == (W, H)  # what it gave, not what was asked
    assert report["fps"] == pytest.approx(30.0)


def test_camera_frames_are_rgb_or_marked_bgr(clip: Path) -> None:
    rgb = OpenCVCamera(CameraConfig(device=str(clip)))
    bgr = OpenCVCamera(CameraConfig(device=str(clip), pixel_format="bgr"))
    with rgb:
        assert rgb.read().pixel_format == "rgb"
    with bgr:
        assert bgr.read().pixel_format == "bgr"
    images = []
    for camera in (rgb, bgr):  # the first frame of each, without the grab thread racing ahead
        camera._open()
        try:
            images.append(camera._grab()[0])
        finally:
            camera._close()
    assert read_stamp(images[0]) == 0
    np.testing.assert_array_equal(images[0], images[1][..., ::-1])


def test_camera_from_a_url(clip: Path, http_server: tuple) -> None:
    url, _ = http_server
    with OpenCVCamera(CameraConfig(device=f"{url}/{clip.name}")) as camera:
        stamps = [read_stamp(camera.read().image) for _ in range(3)]
    assert set(stamps) <= set(range(30)) and camera.width == W


def test_missing_camera_fails_clearly_and_releases(tmp_path: Path) -> None:
    camera = OpenCVCamera(CameraConfig(device=str(tmp_path / "unplugged.mp4")))
    with pytest.raises(SourceError, match="OpenCV cannot open it"):
        camera.connect()
    assert camera._capture is None and not camera.is_connected


def test_no_such_device_index() -> None:
    with pytest.raises(SourceError, match=r"camera 63: OpenCV cannot open it \(is it plugged in"):
        OpenCVCamera(CameraConfig(device=63)).connect()


def test_camera_that_stops_delivering_reconnects_then_gives_up(tmp_path: Path, clip: Path) -> None:
    # A file standing in for the camera: its end is "no frame" (unplugged); the file then disappears.
    stand_in = tmp_path / "cam.mp4"
    stand_in.write_bytes(clip.read_bytes())
    camera = OpenCVCamera(CameraConfig(device=str(stand_in), reconnect_attempts=2, reconnect_backoff_s=0.01))
    with camera:
        camera.read()
        stand_in.unlink()
        with pytest.raises(SourceError, match="gave up after 2 reconnect attempt"):
            for _ in range(500):
                camera.read()
    assert camera.stats.reconnects >= 2 and camera.state == "failed"
