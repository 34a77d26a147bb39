"""Frame -> pixels: the one conversion every consumer of frames uses (models, the web page, `agentrt view`).

A frame says how to read its channels in ``Frame.pixel_format``; a camera
may send BGR, gray, RGBA or depth, and a model wants RGB at its own size::

    from agentrt.pixels import fit, to_rgb

    image = fit(to_rgb(frame), 64)            # uint8 64 x 64 x 3, RGB, whatever the camera sent

- `to_rgb` / `to_bgr` (OpenCV's order, for windows and PNG files): uint8
  H x W x 3. Gray and depth are repeated into three channels; alpha is
  dropped; uint16 is scaled from its full range (65535 -> 255), except depth,
  which like float frames is scaled by the frame's own maximum (so near and
  far stay visible whatever the unit). A plain RGB uint8 frame comes back as
  its own array (no copy: do not write to it).
- Shared-memory frames (`Frame.shm`): the result never aliases the ring slot
  (it is copied), and the slot is checked after the copy: `FrameTornError`
  when the publisher overwrote it first (drop the frame, take the next).
- `fit` brings an image to a model's input size: ``center-crop`` (default;
  the largest centred region of the target's shape, then resized: nothing is
  stretched) or ``resize`` (the whole image, stretched). The resize averages
  areas (each output pixel the mean of the input pixels it covers, fractions
  weighted), in numpy: no OpenCV or PIL needed. An image already at the size
  is returned as it is, so a 64 x 64 sim frame reaches the model unchanged.

The formats (`PIXEL_FORMATS`) are the wire's (docs/protocol.md); a source that
captures colour delivers one of `COLOUR_ORDERS`.
"""

from __future__ import annotations

import numpy as np

from agentrt.errors import ConfigError, FrameTornError, ProtocolError
from agentrt.messages import Frame

__all__ = ["PIXEL_FORMATS", "FORMAT_CHANNELS", "COLOUR_ORDERS", "FIT_MODES", "to_rgb", "to_bgr", "fit"]

# pixel format -> channels; "" on the wire means "by channel count" (Frame fills it in)
FORMAT_CHANNELS = {"gray": 1, "rgb": 3, "bgr": 3, "rgba": 4, "bgra": 4, "depth": 1}
PIXEL_FORMATS = tuple(FORMAT_CHANNELS)
COLOUR_ORDERS = tuple(f for f, n in FORMAT_CHANNELS.items() if n == 3)  # ("rgb", "bgr"): what sources capture
FIT_MODES = ("center-crop", "resize")
_SWAPPED = ("bgr", "bgra")


def to_rgb(frame: Frame) -> np.ndarray:
    """The frame's pixels as RGB uint8 (H, W, 3), honouring ``pixel_format``; see the module docstring."""
    return _convert(frame, "rgb")


def to_bgr(frame: Frame) -> np.ndarray:
    """The frame's pixels as BGR uint8 (H, W, 3): OpenCV's order (``imshow``, ``imwrite``)."""
    return _convert(frame, "bgr")


def _convert(frame: Frame, order: str) -> np.ndarray:
    fmt, image = frame.pixel_format, frame.image
    expected = FORMAT_CHANNELS.get(fmt)
    if expected is None:
        raise ProtocolError(f"frame {frame.seq} of stream '{frame.stream}': unknown pixel_format {fmt!r}, expected "
                            f"one of {', '.join(PIXEL_FORMATS)}; set Frame.pixel_format to how its channels are ordered")
    if frame.channels != expected:
        raise ProtocolError(f"frame {frame.seq} of stream '{frame.stream}': pixel_format {fmt!r} has {expected} "
                            f"channel(s), but the image has {frame.channels} (shape {image.shape}); "
                            "fix the pixel_format the source sets")
    image = _to_uint8(image, fmt)
    if expected == 1:
        out = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    else:
        stored = "bgr" if fmt in _SWAPPED else "rgb"
        colour = image[..., :3]
        out = np.ascontiguousarray(colour if stored == order else colour[..., ::-1])
    if frame.shm is not None:  # the messages.py contract: copy the slot's pixels, then check they were not torn
        if np.may_share_memory(out, frame.image):
            out = out.copy()
        if not frame.intact():
            raise FrameTornError(frame.stream, frame.seq)
    return out


def _to_uint8(image: np.ndarray, fmt: str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16 and fmt != "depth":
        scale = 255.0 / 65535.0  # a 16-bit camera: its full range
    else:  # depth (any unit) and float frames: by the frame's own maximum, so the picture is never blank
        scale = 255.0 / max(float(image.max()), 1e-6) if image.size else 1.0
    return np.clip(np.rint(image.astype(np.float32) * scale), 0, 255).astype(np.uint8)


def fit(image: np.ndarray, size: int | tuple[int, int], mode: str = "center-crop") -> np.ndarray:
    """``image`` (H, W, C) at ``size`` (a side, or (height, width)); see the module docstring for the modes.

    The same array when it is already at the size; otherwise a new uint8 array (for uint8 input)."""
    height, width = (size, size) if isinstance(size, int) else size
    if height < 1 or width < 1:
        raise ConfigError(f"fit: expected a size of at least 1x1, got {width}x{height}")
    if mode not in FIT_MODES:
        raise ConfigError(f"fit: expected a mode of {', '.join(FIT_MODES)}, got {mode!r}")
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if mode == "center-crop":  # the largest centred region of the target's aspect ratio
        crop_h, crop_w = min(h, round(w * height / width)), min(w, round(h * width / height))
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        image = image[top : top + crop_h, left : left + crop_w]
    return _area_resize(image, height, width)


def _area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Each output pixel: the mean of the input area it covers (fractional pixels weighted), as two matrix products."""
    rows, cols = _area_weights(image.shape[0], height), _area_weights(image.shape[1], width)
    h, w = image.shape[:2]
    x = image.astype(np.float32).reshape(h, w, -1)
    out = (rows @ x.reshape(h, -1)).reshape(height, w, -1)  # rows first: the large input shrinks at once
    out = (cols @ out).reshape((height, width) + image.shape[2:])  # (ow, w) @ (oh, w, c) -> (oh, ow, c)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(image.dtype)
    return out.astype(image.dtype)


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in): row i weights the input pixels that output pixel i covers; each row sums to 1."""
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)
