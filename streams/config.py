"""`SourceConfig`: the fields every source shares, and the type check every config runs.

Each source has an ``XConfig`` dataclass that extends this one and validates
itself in ``__post_init__``: a wrong value raises ConfigError naming the
field, what was expected and what was given. Values from YAML or the command
line arrive as int / float / bool / str and are checked against the field
annotations (an int is accepted for a float field and converted).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

from agentrt.configs import type_ok
from agentrt.errors import ConfigError
from agentrt.pixels import COLOUR_ORDERS

__all__ = ["SourceConfig", "check_field_types", "config_fields"]


def config_fields(config_class: type) -> list[str]:
    """The field names of a config dataclass, in order."""
    return [f.name for f in dataclasses.fields(config_class)]


def _describe(hint: Any) -> str:
    """``int | None`` -> "int or None", for the error message."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return " or ".join("None" if t in (type(None), None) else getattr(t, "__name__", str(t)) for t in options)


def check_field_types(config: Any) -> None:
    """Raise ConfigError if a field's value does not match its annotation (agentrt.configs.type_ok,
    the launch file's check too); ints become floats where due."""
    hints = typing.get_type_hints(type(config))
    name = type(config).__name__
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        hint = hints.get(f.name, Any)
        ok, coerced = type_ok(value, hint)
        if not ok:
            raise ConfigError(f"{name}.{f.name}: expected {_describe(hint)}, got {value!r} ({type(value).__name__})")
        if coerced is not value and type(coerced) is float:  # int -> float only: other coercions stay as given
            setattr(config, f.name, coerced)


@dataclass
class SourceConfig:
    """Fields shared by every source. Units are in the names."""

    stream: str = "camera"  # the name on every Frame (Frame.stream)
    pixel_format: str = "rgb"  # "rgb" (default) or "bgr" (OpenCV's order, saves a conversion)
    timeout_ms: int = 2000  # no frame for this long = a stall: reads raise, cameras/streams reconnect
    reconnect_attempts: int = 10  # consecutive failed reconnects before giving up; -1 = forever, 0 = never
    reconnect_backoff_s: float = 0.5  # first wait before reconnecting; doubles each failure
    reconnect_backoff_max_s: float = 8.0  # the doubling stops here

    def __post_init__(self) -> None:
        check_field_types(self)
        name = type(self).__name__
        if not self.stream or "/" in self.stream:
            raise ConfigError(f"{name}.stream: expected a plain name like 'camera', got {self.stream!r}")
        if self.pixel_format not in COLOUR_ORDERS:  # the wire has more formats; a source captures colour
            raise ConfigError(f"{name}.pixel_format: expected one of {COLOUR_ORDERS}, got {self.pixel_format!r}")
        if self.timeout_ms <= 0:
            raise ConfigError(f"{name}.timeout_ms: expected > 0, got {self.timeout_ms}")
        if self.reconnect_attempts < -1:
            raise ConfigError(f"{name}.reconnect_attempts: expected -1 (forever), 0 or more, got {self.reconnect_attempts}")
        if self.reconnect_backoff_s < 0 or self.reconnect_backoff_max_s < self.reconnect_backoff_s:
            raise ConfigError(
                f"{name}.reconnect_backoff_s / reconnect_backoff_max_s: expected 0 <= first <= max, "
                f"got {self.reconnect_backoff_s} / {self.reconnect_backoff_max_s}"
            )

    def check_exists(self) -> None:
        """Raise a permanent SourceError if what this config names is not on this machine.

        Only a look (stat), nothing opened. Files and folders are checked; a camera or a
        network stream is not: it may appear or come back, and the source reconnects.
        """
