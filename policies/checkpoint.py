"""One checkpoint format for both nano models: safetensors weights, the config as JSON beside them.

A file holds the model's tensors (``decoder.lm_head.weight`` left out: it is tied to the
embedding) and, in the safetensors header's metadata, ``config`` (the model's dataclass
config as JSON), optionally ``kind`` (a tag the loader checks: ``nano_qa``; the nano VLA's
files predate tags and carry none) and any extra entries (training figures, the robot), each
as JSON. ``PATH.json`` beside it repeats the config and the extras for people to read.

Writing: safetensors' own ``save_file`` leaves mode 0600 (it writes through a private
temporary file), so weights copied into ``policies/weights/`` or shared with others were
unreadable to everyone but their owner. Here the bytes are built in memory (a nano model is
a few MB), written to a temporary file beside the target created with 0666 less the umask
(as ``open()`` would), and renamed over it: a reader, a crash or a kill never sees half a file.

Reading: every way a file can fail to load (absent, truncated, foreign, another model's,
another version's config, tensors of other shapes) is one ``ModelError`` line naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from agentrt.errors import ModelError

__all__ = ["save_checkpoint", "load_checkpoint", "write_atomic", "write_weights", "TIED"]

TIED = "decoder.lm_head.weight"  # tied to the decoder's embedding: never stored, restored by the tie
M = TypeVar("M", bound=nn.Module)


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


def save_checkpoint(model: nn.Module, config: Any, path: str | Path, extra: dict[str, Any] | None = None, *,
                    kind: str | None = None) -> None:
    """``model``'s weights to ``path`` with ``config`` (a dataclass), the ``kind`` tag and ``extra`` in
    the metadata, and ``path``.json beside it (config and extra)."""
    extra = extra or {}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k != TIED}
    meta = {"config": json.dumps(asdict(config)), **({"kind": kind} if kind else {}),
            **{k: json.dumps(v) for k, v in extra.items()}}
    write_weights(path, state, meta, {"config": asdict(config), **extra})


def load_checkpoint(path: str | Path, build: Callable[[dict[str, Any]], M], *, name: str, kind: str | None = None,
                    absent: str, device: str | torch.device = "cpu") -> tuple[M, dict[str, Any]]:
    """-> (``build(config)`` with the file's weights, in eval mode on ``device``; the extra metadata).

    ``name`` says which model in errors ("nano QA"), ``kind`` is the tag the file must carry (None:
    none), ``absent`` what to do when there is no file. ``build`` may raise TypeError / ValueError
    (a config from another version) and the state may not fit: both are a ``ModelError``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"no {name} weights at {path}: {absent}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own types for a truncated or foreign file
        raise ModelError(f"{path}: not a readable safetensors file ({exc}); re-save or re-train it") from None
    if "config" not in meta or meta.get("kind") != kind:
        # a file with a config and no tag is the nano VLA's (its files predate tags)
        held = meta.get("kind") or ("nano VLA" if "config" in meta else "")
        other = f" (is it the {held} model's?)" if held else ""
        raise ModelError(f"{path}: no {name} config in the safetensors metadata{other}")
    try:
        model = build(json.loads(meta["config"]))
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (TypeError, ValueError, RuntimeError) as exc:  # unknown config fields; tensors of other shapes
        raise ModelError(f"{path}: not {name} weights this version can load ({_first_line(exc)})") from None
    missing = [k for k in missing if k != TIED]
    if missing or unexpected:
        raise ModelError(f"{path}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    extra = {k: json.loads(v) for k, v in meta.items() if k not in ("config", "kind")}
    return model.to(device).eval(), extra


def _first_line(exc: BaseException) -> str:
    """The line of a load error that says what: torch puts it under a header ("size mismatch for ...")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__)[:200]
