"""JPEG for frames that cross hosts. OpenCV does the work; we check sizes first.

A JPEG's own dimensions are read from its SOF marker and must equal the Frame
header's before anything is decoded, so a small message cannot make the
receiver allocate a huge image.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from agentrt.errors import MissingDependencyError, ProtocolError

__all__ = ["jpeg_encode", "jpeg_decode", "jpeg_size"]

# Start-of-frame markers (baseline, extended, progressive, lossless, ...), not DHT/JPG/DAC.
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError("opencv-python-headless", "JPEG frames") from exc
    return cv2


def jpeg_size(data: memoryview) -> tuple[int, int, int]:
    """(width, height, components) from the JPEG's SOF segment; ProtocolError if there is none."""
    n = data.nbytes
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise ProtocolError("jpeg payload does not start with the JPEG SOI marker FF D8")
    i = 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ProtocolError(f"jpeg payload is corrupt: expected a marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        (length,) = struct.unpack_from(">H", data, i + 2)
        if length < 2:
            raise ProtocolError("jpeg payload is corrupt: segment length < 2")
        if marker in _SOF_MARKERS:
            if i + 10 > n:
                break
            height, width = struct.unpack_from(">HH", data, i + 5)
            return width, height, data[i + 9]
        i += 2 + length
    raise ProtocolError("jpeg payload has no frame header (SOF marker); truncated or not a JPEG")


def jpeg_encode(image: np.ndarray, pixel_format: str, quality: int = 80) -> np.ndarray:
    if image.dtype != np.uint8 or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ProtocolError(f"jpeg frames must be uint8 with 1 or 3 channels, got {image.dtype} shape {image.shape}")
    cv2 = _cv2()
    pixels = image[..., ::-1] if pixel_format == "rgb" else image  # OpenCV's JPEG expects BGR
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(pixels), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ProtocolError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    return np.asarray(data).reshape(-1)


def jpeg_decode(data: memoryview, width: int, height: int, channels: int, pixel_format: str) -> np.ndarray:
    jpeg_width, jpeg_height, components = jpeg_size(data)
    if (jpeg_width, jpeg_height, components) != (width, height, channels):
        raise ProtocolError(
            f"jpeg is {jpeg_width}x{jpeg_height}x{components} but the Frame header says {width}x{height}x{channels}"
        )
    cv2 = _cv2()
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    if image is None or image.shape[:2] != (height, width):
        raise ProtocolError("jpeg payload could not be decoded (corrupt data)")
    if channels == 1:
        return image.reshape(height, width, 1)
    return np.ascontiguousarray(image[..., ::-1]) if pixel_format == "rgb" else image
