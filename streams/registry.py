"""The one table from a source ``type:`` name to its class, and the SOURCE strings of the CLI.

Launch files and nodes name a source by type plus parameters::

    source: {type: synthetic, width: 640, height: 480, fps: 30}
    source: {type: file, path: clip.mp4, loop: true}

The command line takes one SOURCE string (`parse_source`):

=============================  =============================================
``synthetic``                  moving shapes, 640x480 at 30 fps
``synthetic:bars:320x240@15``  pattern, size and rate, each optional
``camera:0``, ``/dev/video2``  a local camera (``camera:0:1280x720@30``)
``clip.mp4``                   a video file (a recording with a sidecar
                               ``clip.frames.csv`` plays as ``player``)
``rtsp://...``, ``http://...``  a network stream (type ``file``)
``photos/``                    a folder of images
``file:X``, ``folder:X``,      force the type
``player:X``
=============================  =============================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentrt.configs import parse_set
from agentrt.errors import ConfigError
from streams.camera import OpenCVCamera
from streams.config import SourceConfig, config_fields
from streams.folder import FolderSource
from streams.player import PlayerSource
from streams.recorder import sidecar_path
from streams.source import Source
from streams.synthetic import PATTERNS, SyntheticSource
from streams.video import VideoSource, is_network

__all__ = ["SOURCES", "parse_source", "parse_overrides", "make_config", "make_source"]

# type name -> class. The one table; each class names its config in `config_class`.
SOURCES: dict[str, type[Source]] = {
    "camera": OpenCVCamera,
    "file": VideoSource,
    "folder": FolderSource,
    "synthetic": SyntheticSource,
    "player": PlayerSource,
}

_SIZE_RATE = re.compile(r"^(?:(\d+)x(\d+))?(?:@(\d+(?:\.\d+)?))?$")


def _size_rate(text: str, spec: str) -> dict[str, Any]:
    match = _SIZE_RATE.match(text)
    if not match or not text:
        raise ConfigError(f"source {spec!r}: expected WIDTHxHEIGHT@FPS (each part optional), got {text!r}")
    out: dict[str, Any] = {}
    if match.group(1):
        out["width"], out["height"] = int(match.group(1)), int(match.group(2))
    if match.group(3):
        out["fps"] = float(match.group(3))
    return out


def parse_source(spec: str) -> dict[str, Any]:
    """A SOURCE string -> {"type": ..., params...}; see the module docstring for the forms."""
    text = spec.strip()
    if not text:
        raise ConfigError("source: expected something like 'synthetic', 'camera:0', 'clip.mp4' or 'rtsp://...'")
    if is_network(text):
        return {"type": "file", "path": text}
    head, _, rest = text.partition(":")
    if head == "synthetic":
        params: dict[str, Any] = {"type": "synthetic"}
        for part in filter(None, rest.split(":")):
            if part in PATTERNS:
                params["pattern"] = part
            else:
                params.update(_size_rate(part, spec))
        return params
    if head == "camera":
        device, _, size = rest.partition(":")
        params = {"type": "camera", "device": int(device) if device.isdigit() else (device or 0)}
        if size:
            params.update(_size_rate(size, spec))
        return params
    if head in ("file", "folder", "player") and rest:
        return {"type": head, "path": rest}
    if text.startswith("/dev/video"):
        return {"type": "camera", "device": text}
    path = Path(text)
    if path.is_dir():
        return {"type": "folder", "path": text}
    if sidecar_path(path).exists():
        return {"type": "player", "path": text}
    if path.exists() or path.suffix:
        return {"type": "file", "path": text}
    raise ConfigError(
        f"source {spec!r}: not a file, folder, URL or known type; expected one of {', '.join(SOURCES)} "
        "(e.g. 'synthetic:640x480@30', 'camera:0', 'clip.mp4', 'rtsp://host/stream')"
    )


def make_config(spec: str | Mapping[str, Any], **overrides: Any) -> SourceConfig:
    """The validated config for a SOURCE string or a {type: ..., params} mapping, with overrides applied."""
    params = parse_source(spec) if isinstance(spec, str) else dict(spec)
    params.update(overrides)
    type_name = params.pop("type", None)
    if type_name not in SOURCES:
        raise ConfigError(f"source type: expected one of {', '.join(SOURCES)}, got {type_name!r}")
    config_class = SOURCES[type_name].config_class
    known = config_fields(config_class)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"source type {type_name!r}: unknown field(s) {', '.join(unknown)}; expected some of {', '.join(known)}")
    try:
        return config_class(**params)
    except TypeError as exc:  # pragma: no cover - unknown fields are caught above
        raise ConfigError(f"source type {type_name!r}: {exc}") from None


def make_source(spec: str | Mapping[str, Any], **overrides: Any) -> Source:
    """A source (not yet connected) for a SOURCE string or a {type: ..., params} mapping."""
    config = make_config(spec, **overrides)
    for cls in SOURCES.values():
        if type(config) is cls.config_class:
            return cls(config)
    raise ConfigError(f"no source class for {type(config).__name__}")  # pragma: no cover




def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["fps=15", "loop=true", "device=/dev/video2"]`` -> {"fps": 15, "loop": True, ...}: the one
    ``--set KEY=VALUE`` grammar (agentrt.configs.parse_set; values read as YAML)."""
    return parse_set(pairs)
