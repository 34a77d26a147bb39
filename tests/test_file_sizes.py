"""Product files stay small enough to read in one sitting: at most 450 lines, or the module docstring
has a line starting "Over 450 lines:" that says why this file is one piece (README.md, "What is here")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agentrt", "streams", "policies", "sims")
MAX_LINES = 450
REASON = "Over 450 lines:"

def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _says_why(path: Path) -> bool:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return any(line.strip().startswith(REASON) and line.strip() != REASON for line in docstring.splitlines())


def _product_files() -> list[Path]:
    return [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]


def test_product_files_stay_under_450_lines_or_say_why() -> None:
    too_long = {}
    for path in _product_files():
        rel, lines = str(path.relative_to(ROOT)), _line_count(path)
        if lines > MAX_LINES and not _says_why(path):
            too_long[rel] = lines
    assert not too_long, (f"files over {MAX_LINES} lines whose docstring has no '{REASON} <why>' line: {too_long}; "
                          "split them along a seam, or say why they are one piece")

