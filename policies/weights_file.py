"""Writing a weights file and its JSON card: whole or not at all, with the permissions any file gets.

safetensors' own ``save_file`` leaves mode 0600 (it writes through a private
temporary file), so weights copied into ``policies/weights/`` or shared with
others were unreadable to everyone but their owner. Here the bytes are built in
memory (a nano model is a few MB), written to a temporary file beside the
target created with 0666 less the umask (as ``open()`` would), and renamed over
it: a reader, a crash or a kill never sees half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["write_atomic", "write_weights"]


def write_atomic(path: str | Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file in the same folder and a rename; mode 0666 less the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of a killed writer with this pid: O_EXCL below would refuse it
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str], card: dict[str, Any]) -> None:
    """``state`` as safetensors (``metadata`` in its header) to ``path``, and ``card`` as ``path``.json beside it."""
    from safetensors.torch import save

    path = Path(path)
    write_atomic(path, save(state, metadata=metadata))
    write_atomic(path.with_suffix(".json"), (json.dumps(card, indent=1) + "\n").encode())
