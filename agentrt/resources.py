"""Files that ship with agentrt, found the same way in a source checkout and in an installed wheel.

Launch files live at the top of the repository (``launch/``); the wheel carries them as
``agentrt/launchfiles/`` (setup.py maps the folder), so an installed agentrt runs them from any
folder. Weights, the web page and URDFs sit inside their packages and are found beside their
modules (``policies.vla.policy.default_weights``, ``agentrt/web/page.html``, ``sims/real/urdf``).

A launch file is named the way people type it::

    agentrt run launch/sim.yaml        # a file here (relative to the current folder) wins
    agentrt run sim.yaml               # else a shipped one, by name ...
    agentrt run launch/sim.yaml        # ... also with its repository folder, from any folder
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["launch_dir", "shipped_launch_files", "find_launch"]

_PACKAGE = Path(__file__).resolve().parent


def launch_dir() -> Path:
    """The shipped launch files: ``agentrt/launchfiles`` when installed, else the checkout's ``launch/``."""
    installed = _PACKAGE / "launchfiles"
    return installed if installed.is_dir() else _PACKAGE.parent / "launch"


def shipped_launch_files() -> list[str]:
    """The names of the shipped launch files, sorted."""
    return sorted(p.name for p in launch_dir().glob("*.yaml"))


def find_launch(path: str | Path) -> Path:
    """``path`` when it exists; else the shipped launch file it names (``NAME``, ``NAME.yaml`` or
    ``launch/NAME.yaml``); else ``path`` unchanged, for the caller's 'cannot read' error."""
    given = Path(path)
    if given.exists() or given.is_absolute():
        return given
    parts = given.parts
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == "launch"):
        name = parts[-1] if parts[-1].endswith((".yaml", ".yml")) else parts[-1] + ".yaml"
        shipped = launch_dir() / name
        if shipped.is_file():
            return shipped
    return given
