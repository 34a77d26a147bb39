"""Build glue for what pyproject.toml cannot say: the top-level ``launch/`` folder travels in the wheel.

The repository keeps its launch files at the top (``launch/``, the fixed layout); an installed
agentrt needs them too (``agentrt demo``, ``agentrt serve``, ``agentrt run sim.yaml``), so the
wheel carries that folder as the package data of ``agentrt.launchfiles`` (``agentrt/launchfiles/*.yaml``
beside the installed modules). ``agentrt.resources.launch_dir`` finds it there, or ``launch/`` in a
checkout. Everything else (metadata, package data) is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

# Namespace discovery, as pyproject's packages.find did: data-only folders (policies/weights,
# sims/real/urdf) are packages too, so their files ship.
PACKAGES = find_namespace_packages(include=["agentrt*", "streams*", "policies*", "sims*"], exclude=["*__pycache__"])

setup(packages=[*PACKAGES, "agentrt.launchfiles"], package_dir={"agentrt.launchfiles": "launch"})
