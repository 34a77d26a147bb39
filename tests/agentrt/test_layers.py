"""The layers: the runtime core imports nothing of the application, and the application packages hold no CLI.

The core is ``agentrt/*.py`` and ``agentrt/engine/``; ``agentrt/cli``, ``bench``, ``nodes`` and ``web`` are
the application layer, like ``policies``, ``sims`` and ``streams``. Imports are read with ``ast``, so a lazy
import inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = ("agentrt.cli", "agentrt.bench", "agentrt.nodes", "agentrt.web", "policies", "sims", "streams")
# argument parsing, the CLI's table printer, and starting a launch file under the supervisor (`agentrt run`, `demo`)
CLI_MODULES = ("argparse", "agentrt.cli", "agentrt.bench.report", "agentrt.supervisor")


def core_modules() -> list[Path]:
    return sorted([*(ROOT / "agentrt").glob("*.py"), *(ROOT / "agentrt" / "engine").glob("*.py")])


def imported(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in it: (line, dotted name); ``from a import b`` gives a.b too."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_scan_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from agentrt.bench.report import percentile\n    import sims.tasks\n")
    names = [name for _, name in imported(module)]
    assert _within(names[0], APPLICATION) and "sims.tasks" in names


def test_the_core_imports_nothing_of_the_application() -> None:
    modules = core_modules()
    assert ROOT / "agentrt" / "telemetry.py" in modules and ROOT / "agentrt" / "engine" / "decoder.py" in modules
    wrong = [f"{path.relative_to(ROOT)}:{line}: {name}" for path in modules for line, name in imported(path)
             if _within(name, APPLICATION)]
    assert not wrong, "the core imports the application layer:\n" + "\n".join(wrong)


def test_the_application_packages_hold_no_cli_code() -> None:
    modules = sorted(p for package in ("policies", "sims", "streams") for p in (ROOT / package).rglob("*.py"))
    assert modules
    wrong = [f"{path.relative_to(ROOT)}:{line}: {name}" for path in modules for line, name in imported(path)
             if _within(name, CLI_MODULES)]
    entries = [f"{path.relative_to(ROOT)}: def {node.name}" for path in modules
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)
               and node.name in ("run_cli", "main", "add_arguments")]
    assert not wrong and not entries, "CLI code outside agentrt/cli:\n" + "\n".join(wrong + entries)


def test_no_hand_made_transport_pipeline_in_the_core() -> None:
    # `agentrt demo --transport` runs launch/pipeline_demo.yaml under the supervisor: no copy of it by hand
    assert not (ROOT / "agentrt" / "transport_demo.py").exists()
    uses_mp = [str(p.relative_to(ROOT)) for p in core_modules() for _, name in imported(p) if name == "multiprocessing"]
    assert not uses_mp, uses_mp
