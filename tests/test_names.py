"""One name, one thing: no two public classes across the product packages share a name.

A second ``CameraConfig`` or ``Tick`` makes an import line ambiguous to a reader and a
``class:`` string in a launch file easy to get wrong; this walks every module's
``__all__`` (or its public top-level classes) and fails on any name defined twice."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agentrt", "streams", "policies", "sims")


def _public_classes() -> dict[str, list[str]]:
    """Class name -> the modules that define it (by source, so nothing is imported)."""
    seen: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    seen[node.name].append(str(path.relative_to(ROOT)))
    return seen


def test_no_two_public_classes_share_a_name() -> None:
    dupes = {name: where for name, where in _public_classes().items() if len(where) > 1}
    assert not dupes, f"public class names defined more than once: {dupes}"
