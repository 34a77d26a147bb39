"""Product files stay small enough to read in one sitting: at most 450 lines, or the module docstring
has a line starting "Over 450 lines:" that says why this file is one piece (README.md, "What is here")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agentrt", "streams", "policies", "sims")
MAX_LINES = 450
REASON = "Over 450 lines:"

# Temporary: policies/ is being split on another branch of issue 14 (point 10). Each entry is the file's
# line count when this test was written; it may not grow. Remove the entries once that branch is merged;
# an entry whose file is gone or back under the limit fails test_size_allow_list_is_current.
_PENDING_SPLIT = {
    "policies/nano_qa.py": 518,
    "policies/qa_data.py": 590,
    "policies/qa_train.py": 467,
}


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
        if lines > MAX_LINES and not _says_why(path) and lines > _PENDING_SPLIT.get(rel, MAX_LINES):
            too_long[rel] = lines
    assert not too_long, (f"files over {MAX_LINES} lines whose docstring has no '{REASON} <why>' line: {too_long}; "
                          "split them along a seam, or say why they are one piece")


def test_size_allow_list_is_current() -> None:
    stale = sorted(rel for rel in _PENDING_SPLIT
                   if not (ROOT / rel).exists() or _line_count(ROOT / rel) <= MAX_LINES or _says_why(ROOT / rel))
    assert not stale, f"remove {stale} from _PENDING_SPLIT: split, gone, or saying why"


def test_the_reason_line_is_what_lets_a_long_file_pass(tmp_path: Path) -> None:
    long_body = "x = 1\n" * (MAX_LINES + 1)
    bare = tmp_path / "bare.py"
    bare.write_text(f'"""A module."""\n{long_body}')
    reasoned = tmp_path / "reasoned.py"
    reasoned.write_text(f'"""A module.\n\n{REASON} one table and the codec that reads it.\n"""\n{long_body}')
    empty_reason = tmp_path / "empty.py"
    empty_reason.write_text(f'"""A module.\n\n{REASON}\n"""\n{long_body}')
    assert [_says_why(p) for p in (bare, reasoned, empty_reason)] == [False, True, False]
