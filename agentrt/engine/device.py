"""Where a model runs: one parser for ``--device`` and ``--dtype``, one record of it for reports.

``auto`` picks the first CUDA GPU when there is one, else the CPU. bfloat16 is for accelerators: on a CPU
it is allowed (and exact tests run in float32 anyway) but rarely faster.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

import torch

from agentrt.errors import ConfigError

DEVICE_CHOICES_HELP = "auto (a GPU when there is one), cpu, cuda or cuda:N"
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` -> a device that exists here, or a one-line ConfigError."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = spec.strip().lower()
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r}: no CUDA device here; use --device cpu (or auto)")
        try:
            device = torch.device(text if text != "cuda" else "cuda:0")
        except RuntimeError:
            raise ConfigError(f"device {spec!r} not understood; expected {DEVICE_CHOICES_HELP}") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) here; use cuda:0")
        return device
    raise ConfigError(f"device {spec!r} not understood; expected {DEVICE_CHOICES_HELP}")


def resolve_dtype(name: str | torch.dtype = "float32") -> torch.dtype:
    """``float32`` / ``bfloat16`` -> the torch dtype, or a one-line ConfigError."""
    if isinstance(name, torch.dtype):
        if name in DTYPES.values():
            return name
        name = str(name).removeprefix("torch.")
    try:
        return DTYPES[name.strip().lower()]
    except KeyError:
        raise ConfigError(f"dtype {name!r} not understood; expected one of {', '.join(DTYPES)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Placement:
    """A resolved device and dtype; ``record()`` is what every bench JSON carries."""

    device: torch.device
    dtype: torch.dtype

    @classmethod
    def parse(cls, device: str | torch.device = "auto", dtype: str | torch.dtype = "float32") -> Placement:
        return cls(resolve_device(device), resolve_dtype(dtype))

    def record(self) -> dict[str, Any]:
        return device_record(self.device, self.dtype)


def accelerator_name(device: torch.device) -> str:
    """The GPU's marketing name, or the CPU's model, for reports."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # Linux: platform.processor() is empty there
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_record(device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    return {
        "device": str(device),
        "dtype": dtype_name(dtype),
        "accelerator": accelerator_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
    }


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (runners follow their model, not the device they saw first)."""
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels before reading a clock (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
