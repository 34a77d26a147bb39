"""Lazy package exports: a package's ``__init__`` names its public API without importing it.

``import policies`` (and ``policies.qa``, ``policies.vla``) must stay cheap: the CLI, the
launcher's checks and the torch-free contract (``policies.qa.videoqa``) import through these
packages, and most of the API pulls in torch. A name is imported from its module on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a module path) on first use."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
