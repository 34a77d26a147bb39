"""Figures every report shares: percentiles and the machine a run measured on.

The runtime's telemetry report and the benchmarks (`agentrt.bench.report`) both write
them; they live here, in the core, so the core imports nothing of the application.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

__all__ = ["percentile", "machine_info"]

_VERSIONED = ("numpy", "pyzmq", "torch", "transformers", "pybullet", "av", "opencv-python-headless", "msgpack")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def machine_info() -> dict[str, Any]:
    """Platform, processor, CPU count, Python and the versions of the libraries that shape the figures."""
    versions: dict[str, str] = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": versions,
    }
