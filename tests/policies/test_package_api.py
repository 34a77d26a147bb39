"""policies/ has a shape: each package names its public API in ``__init__`` (``__all__``), every name
there resolves, importing the packages stays cheap (no torch, no simulator), and files keep one job."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("policies", "policies.vla", "policies.qa", "policies.qa.hf", "policies.qa.data")


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_names_its_public_api_and_every_name_resolves(name: str) -> None:
    package = importlib.import_module(name)
    public = package.__all__
    assert public and len(public) == len(set(public)), public
    for attribute in public:
        assert getattr(package, attribute) is not None, (name, attribute)
    lazy = getattr(package, "_EXPORTS", None)
    assert lazy is None or set(lazy) == set(public), (name, set(lazy or ()) ^ set(public))


def test_importing_the_packages_imports_neither_torch_nor_the_simulator() -> None:
    code = ("import sys, policies, policies.vla, policies.qa, policies.qa.hf, policies.qa.videoqa; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sims', 'pybullet')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout

