"""The wheel: what it holds, and an install of it that runs from a folder with no repository in sight.

The wheel is built from a copy of the source files (git's list), so a stale ``build/`` folder in the
checkout can neither hide a missing file nor ship a deleted one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _source_files() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to list the source files")
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         check=True, capture_output=True).stdout.decode()
    return [name for name in out.split("\0") if name and (REPO / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in _source_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "-q", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("agentrt-*.whl")
    return built


def test_the_wheel_holds_launch_files_web_page_weights_and_urdf(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"agentrt/launchfiles/{p.name}" for p in (REPO / "launch").glob("*.yaml")}
    expected |= {f"policies/weights/{p.name}" for p in (REPO / "policies" / "weights").iterdir() if p.is_file()}
    expected |= {f"sims/real/urdf/{p.name}" for p in (REPO / "sims" / "real" / "urdf").glob("*.urdf")}
    expected |= {"agentrt/web/page.html", "agentrt/resources.py"}
    assert len(expected) > 10
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith(("tests/", "launch/", "docs/")) for n in names)  # shipped only as package data
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "agentrt = agentrt.cli.__main__:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_an_installed_wheel_runs_shipped_launch_files_from_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                           "--disable-pip-version-check", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # the installed copy, not the checkout; dependencies: this venv

    def agentrt(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agentrt.cli", *argv], cwd=empty, env=env,
                              capture_output=True, text=True, timeout=300)

    version = agentrt("--version")
    assert version.returncode == 0 and version.stdout.startswith("agentrt "), version
    for name in ("sim.yaml", "launch/pipeline_demo.yaml", "camera_qa"):
        checked = agentrt("run", name, "--check")
        assert checked.returncode == 0, (name, checked.stderr)
        assert str(site) in checked.stdout + checked.stderr, (name, checked.stdout)  # it named the shipped file
    missing = agentrt("run", "no_such.yaml", "--check")
    assert missing.returncode == 2 and "shipped: " in missing.stderr and "sim.yaml" in missing.stderr
    assert list(empty.iterdir()) == []  # --check writes nothing
    where = subprocess.run([sys.executable, "-c", "import agentrt.resources as r, policies.vla.policy as p; "
                            "print(r.__file__); print(r.launch_dir()); print(p.default_weights('ar'))"],
                           cwd=empty, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert Path(line).is_relative_to(site) and Path(line).exists(), where.stdout


def _defaults(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """(command option, default) for every string default of every subcommand."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(f"{name} {opt}", value) for opt, value in _defaults(sub)]
        values = action.default if isinstance(action.default, list) else [action.default]
        found += [("/".join(action.option_strings), v) for v in values if isinstance(v, str)]
    return found


def test_no_default_points_into_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults name shipped files by where the package is, not a path that exists only in a checkout's root."""
    from agentrt.cli.__main__ import build_parser
    from policies.vla.distill import DistillConfig

    repo_folders = {"agentrt", "streams", "policies", "sims", "launch"}
    bad = [(opt, value) for opt, value in _defaults(build_parser()) if Path(value).parts[:1] and
           Path(value).parts[0] in repo_folders]
    assert bad == []
    monkeypatch.chdir(tmp_path)
    assert Path(DistillConfig().teacher).is_file()  # the shipped AR weights, found from any folder
