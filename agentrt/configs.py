"""The one ``--set`` grammar and the one config type check.

``--set KEY=VALUE`` everywhere: VALUE is read as YAML (``15`` an int, ``true`` a bool,
``[1, 2]`` a list, ``'0'`` the string), and KEY is ``node.param`` for the commands that
run a launch file (``run``, ``serve``, ``node``) and a config field for the commands
that build one component (``stream``, ``record``, ``view``, ``train``).

`type_ok` is the check a config value from YAML or the command line goes through: the
launch file's node params (``agentrt.launch.build_config``) and every source config
(``streams.config.check_field_types``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from typing import Any

import yaml

from agentrt.errors import ConfigError

__all__ = ["parse_set", "type_ok"]


def parse_set(pairs: Iterable[str] | None, form: str = "KEY=VALUE like fps=15", flag: str = "--set") -> dict[str, Any]:
    """``["fps=15", "loop=true"]`` -> {"fps": 15, "loop": True}; a later KEY wins. ``form`` is what
    the error says a pair should look like, ``flag`` the option it came from."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{flag}: expected {form}, got {pair!r}")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            out[key] = text  # not YAML (e.g. an unbalanced bracket): the text itself
    return out


def type_ok(value: Any, hint: Any) -> tuple[bool, Any]:
    """Is ``value`` of type ``hint``? -> (ok, value coerced: int -> float, list -> tuple where due).
    A bool is never an int here (True is 1 to Python, never to a config)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is object:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            ok, coerced = type_ok(value, option)
            if ok:
                return True, coerced
        return False, value
    if hint is type(None) or hint is None:
        return value is None, value
    if origin is typing.Literal:
        return value in args, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        item = args[0] if args and (origin is list or (len(args) == 2 and args[1] is Ellipsis)) else None
        items = []
        for i, v in enumerate(value):
            elem = item if item is not None else (args[i] if i < len(args) else Any)
            ok, coerced = type_ok(v, elem)
            if not ok:
                return False, value
            items.append(coerced)
        return True, tuple(items) if (origin is tuple or hint is tuple) else items
    if origin is dict or hint is dict:
        return isinstance(value, dict), value
    if isinstance(hint, type):
        return isinstance(value, hint), value
    return True, value
