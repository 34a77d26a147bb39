"""Shared pieces of every benchmark: JSON output, tables; statistics and the machine description come from the core
(`agentrt.figures`, re-exported here)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentrt.figures import machine_info, percentile  # the core's: the telemetry report writes them too

if TYPE_CHECKING:
    from agentrt.engine.device import Placement

__all__ = ["percentile", "machine_info", "write_json", "check_writable", "print_rows"]


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise ConfigError now if a report can't be written to ``path`` later."""
    from agentrt.errors import ConfigError

    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"--json {out} is a directory: give a file path such as {out / 'bench.json'}")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ConfigError(f"cannot write {out}: {parent} is not a writable directory")


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(path: str | os.PathLike[str], benchmark: str, result: dict[str, Any], *, quick: bool,
               placement: Placement | None = None) -> Path:
    """The report: the benchmark's name, where it ran (``device``, ``dtype``, ``accelerator``: the GPU's or the
    CPU's name, torch and CUDA versions, torch threads; a bench that runs no model ran on the CPU), the machine,
    then the figures."""
    from agentrt.engine.device import Placement

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    where = (placement or Placement.parse("cpu")).record()
    document = {"benchmark": benchmark, "quick": quick, **where, "machine": machine_info(), **result}
    text = json.dumps(_finite(json.loads(json.dumps(document, default=float))), indent=2, allow_nan=False)
    out.write_text(text + "\n")
    return out


def print_rows(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table with rich (plain text when stdout is not a terminal), or as plain columns where rich is
    not installed (a GPU machine with only torch and transformers)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _print_plain(title, columns, rows)
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*[_fmt(cell) for cell in row])
    Console(width=max(100, len(columns) * 14)).print(table)


def _print_plain(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [list(columns), *[[_fmt(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    print(title)
    for row in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))


def _fmt(cell: Any) -> str:
    if isinstance(cell, float):
        if cell != cell:  # NaN
            return "-"
        return f"{cell:,.3g}" if abs(cell) < 100 else f"{cell:,.0f}"
    return str(cell)
