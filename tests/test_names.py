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


def _task_lists() -> list[str]:
    """Where product code spells two or more task names by hand (a literal tuple/list/set of
    them, or a string like "reach, push, pick_place") outside the one table, sims.tasks.TASKS."""
    from sims.tasks import TASKS

    names = set(TASKS)
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("sims", "tasks"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docstrings = {  # prose for readers, like docs/: examples may name tasks
                id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
            }
            for node in ast.walk(tree):
                if id(node) in docstrings:
                    continue
                if isinstance(node, ast.Tuple | ast.List | ast.Set):
                    spelled = {e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names}
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    words = node.value.replace(",", " ").replace(":", " ").split()
                    spelled = {w for w in words if w in names and w != "push"}  # "push" is also an English word
                    spelled |= {"push"} if spelled and "push" in words else set()
                else:
                    continue
                if len(spelled) >= 2:
                    found.append(f"{rel}:{node.lineno}")
    return found


def test_task_names_come_from_one_table() -> None:
    assert not _task_lists(), f"task names typed by hand (use sims.tasks.TASK_NAMES): {_task_lists()}"
