"""Lazy imports of the heavy backends, with the install command in the error."""

from __future__ import annotations

from typing import Any

from agentrt.errors import MissingDependencyError

__all__ = ["import_av", "import_cv2"]


def import_av() -> Any:
    """PyAV (FFmpeg): video files, network streams, the recorder and the player."""
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError("av", "video files, network streams and recording (PyAV)") from exc
    return av


def import_cv2() -> Any:
    """OpenCV: local cameras and image folders."""
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError("opencv-python-headless", "cameras and image folders (OpenCV)") from exc
    return cv2
