"""agentrt.pixels: one frame -> pixels conversion for every pixel format, fitting to a model's size, and the
shared-memory contract of messages.py (a view is copied and checked, never read torn)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentrt.errors import ConfigError, FrameTornError, ProtocolError
from agentrt.messages import Frame, now_ns
from agentrt.pixels import COLOUR_ORDERS, PIXEL_FORMATS, fit, to_bgr, to_rgb
from agentrt.transport import Publisher, Subscriber, endpoint


@pytest.fixture(autouse=True)
def isolated_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTRT_RUN_DIR", str(tmp_path))
    return tmp_path


def picture(height: int = 6, width: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_to_rgb_handles_pixel_formats() -> None:  # moved from tests/qa/test_qa_node.py, assertions as they were
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 255  # blue in BGR order
    assert to_rgb(Frame("s", 0, 0, bgr, pixel_format="bgr"))[0, 0].tolist() == [0, 0, 255]
    gray = np.full((2, 2), 7, np.uint8)
    assert to_rgb(Frame("s", 0, 0, gray)).shape == (2, 2, 3)
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert to_rgb(Frame("s", 0, 0, rgba)).shape == (2, 2, 3)


def test_every_colour_format_gives_the_same_picture() -> None:
    rgb = picture()
    alpha = np.full(rgb.shape[:2] + (1,), 9, np.uint8)
    stored = {"rgb": rgb, "bgr": rgb[..., ::-1], "rgba": np.concatenate([rgb, alpha], axis=2),
              "bgra": np.concatenate([rgb[..., ::-1], alpha], axis=2)}
    for fmt, image in stored.items():
        frame = Frame("s", 0, 0, np.ascontiguousarray(image), pixel_format=fmt)
        out = to_rgb(frame)
        assert out.dtype == np.uint8 and out.flags.c_contiguous, fmt
        np.testing.assert_array_equal(out, rgb, err_msg=fmt)
        np.testing.assert_array_equal(to_bgr(frame), rgb[..., ::-1], err_msg=fmt)
    gray = rgb[..., 1]
    for frame in (Frame("s", 0, 0, gray), Frame("s", 0, 0, gray[..., None], pixel_format="gray")):
        np.testing.assert_array_equal(to_rgb(frame), np.repeat(gray[..., None], 3, axis=2))
        np.testing.assert_array_equal(to_bgr(frame), np.repeat(gray[..., None], 3, axis=2))


def test_depth_and_16_bit_frames_are_scaled_to_8_bits() -> None:
    depth = np.array([[0.0, 0.5], [1.0, 2.0]], np.float32)[..., None]  # metres: scaled by the frame's maximum
    assert to_rgb(Frame("s", 0, 0, depth, pixel_format="depth"))[..., 0].tolist() == [[0, 64], [128, 255]]
    mm = np.array([[0, 1000], [2000, 4000]], np.uint16)[..., None]  # millimetres: same, whatever the unit
    assert to_rgb(Frame("s", 0, 0, mm, pixel_format="depth"))[..., 0].tolist() == [[0, 64], [128, 255]]
    colour = np.full((1, 1, 3), 65535, np.uint16)  # a 16-bit camera: its full range
    colour[0, 0, 0] = 0
    assert to_rgb(Frame("s", 0, 0, colour, pixel_format="bgr"))[0, 0].tolist() == [255, 255, 0]


def test_an_unknown_or_mislabelled_pixel_format_is_a_clear_error() -> None:
    frame = Frame("cam", 3, 0, picture(), pixel_format="yuv")
    with pytest.raises(ProtocolError, match=r"frame 3 of stream 'cam': unknown pixel_format 'yuv', expected one of "
                                            r"gray, rgb, bgr, rgba, bgra, depth") as info:
        to_rgb(frame)
    assert "\n" not in str(info.value)
    with pytest.raises(ProtocolError, match="pixel_format 'rgba' has 4 channel"):
        to_bgr(Frame("cam", 4, 0, picture(), pixel_format="rgba"))
    assert set(COLOUR_ORDERS) <= set(PIXEL_FORMATS) and COLOUR_ORDERS == ("rgb", "bgr")


def test_an_rgb_frame_is_passed_through_unchanged() -> None:
    """What the sims send (64x64 RGB uint8) reaches a model exactly as the policy node's old slice gave it."""
    image = picture(64, 64)
    frame = Frame("scene", 0, 0, image)
    out = fit(to_rgb(frame), 64)
    np.testing.assert_array_equal(out, np.ascontiguousarray(frame.image[..., :3]))
    assert np.shares_memory(out, image)  # no copy, no resize


def test_fit_center_crop_and_resize() -> None:
    small = picture(64, 64, seed=1)
    # a 512x384 camera: each pixel of ``small`` as a 6x6 block, 64 columns of something else on either side
    big = np.repeat(np.repeat(small, 6, axis=0), 6, axis=1)
    camera = np.concatenate([np.zeros((384, 64, 3), np.uint8), big, np.full((384, 64, 3), 255, np.uint8)], axis=1)
    np.testing.assert_array_equal(fit(camera, 64), small)  # the centre, averaged back block by block
    np.testing.assert_array_equal(fit(big, 64, "resize"), small)
    stretched = fit(camera, 64, "resize")  # the whole picture, side bands included
    assert stretched.shape == (64, 64, 3) and stretched[:, 0].tolist() != small[:, 0].tolist()
    assert fit(camera, (48, 64)).shape == (48, 64, 3) and fit(camera[..., 0], (10, 20)).shape == (10, 20)
    up = fit(small[:2, :2], 4, "resize")  # upscaling: each pixel covers a 2x2 block
    np.testing.assert_array_equal(up, np.repeat(np.repeat(small[:2, :2], 2, axis=0), 2, axis=1))
    with pytest.raises(ConfigError, match="expected a mode of center-crop, resize, got 'stretch'"):
        fit(camera, 64, "stretch")


def test_fit_is_an_area_resize() -> None:
    """640x480 -> 64x64 (7.5 pixels per pixel) equals OpenCV's INTER_AREA of the centre square."""
    cv2 = pytest.importorskip("cv2")
    camera = picture(480, 640, seed=2)
    expected = cv2.resize(np.ascontiguousarray(camera[:, 80:560]), (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(fit(camera, 64), expected)


def test_shared_memory_frames_are_copied_and_checked_for_tearing() -> None:
    address = endpoint("pixels-shm")
    image = picture(480, 640, seed=3)  # large: it goes through the ring
    with Publisher(address, shm_slots=2) as pub, Subscriber(address) as sub:
        frame = None
        for _ in range(200):
            pub.send(Frame("cam", 0, now_ns(), image, pixel_format="bgr"))
            frame = sub.recv(timeout_ms=20)
            if frame is not None:
                break
        assert isinstance(frame, Frame) and frame.shm is not None and frame.intact()
        rgb = to_rgb(frame)
        kept = frame.detached()
        assert not np.shares_memory(rgb, frame.image) and not np.shares_memory(kept.image, frame.image)
        np.testing.assert_array_equal(rgb, image[..., ::-1])
        for seq in (1, 2):  # laps the two-slot ring: the frame's slot now holds another frame
            pub.send(Frame("cam", seq, now_ns(), np.zeros_like(image)))
        assert not frame.intact() and not sub.intact(frame)
        with pytest.raises(FrameTornError, match="frame 0 of stream 'cam': its shared-memory slot was overwritten"):
            to_rgb(frame)
        with pytest.raises(FrameTornError):
            frame.detached()
        np.testing.assert_array_equal(kept.image, image)  # the copy taken in time is whole
        assert kept.shm is None and kept.intact() and kept.detached() is kept
        del frame, rgb


def test_one_list_of_pixel_formats() -> None:
    """The wire's formats and the ones a capture source may be set to come from agentrt.pixels (issue 14.8)."""
    from agentrt import wire
    from streams.camera import CameraConfig

    assert wire.PIXEL_FORMATS is PIXEL_FORMATS
    with pytest.raises(ConfigError, match=r"pixel_format: expected one of \('rgb', 'bgr'\), got 'bgra'"):
        CameraConfig(pixel_format="bgra")
