"""Weights that cannot load are one line (a ModelError), from the loaders and from `agentrt eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from agentrt.cli.__main__ import main
from agentrt.errors import ModelError, is_permanent
from policies.qa import model as nano_qa
from policies.vla import model as nano_vla

WEIGHTS = Path(__file__).resolve().parents[2] / "policies" / "weights"
SHIPPED = {"vla": WEIGHTS / "nano_vla.safetensors", "qa": WEIGHTS / "nano_qa.safetensors"}
LOADERS: dict[str, Callable[[Path], Any]] = {"vla": nano_vla.load_model, "qa": nano_qa.load_model}


def bad_files(kind: str, folder: Path) -> dict[str, Path]:
    """A truncated copy, a foreign safetensors, the right config with a tensor of the wrong shape, a config
    from another version (an unknown field)."""
    shipped = SHIPPED[kind]
    with safe_open(str(shipped), framework="pt") as f:
        meta = f.metadata()
    state = load_file(str(shipped))
    out = {name: folder / f"{kind}_{name}.safetensors" for name in ("truncated", "foreign", "shape", "config")}
    out["truncated"].write_bytes(shipped.read_bytes()[: shipped.stat().st_size // 3])
    save_file({"embed.weight": torch.zeros(3, 4)}, str(out["foreign"]), metadata={"format": "pt"})
    name = next(iter(state))
    save_file({**state, name: torch.zeros(2, 3, 5)}, str(out["shape"]), metadata=meta)
    config = json.loads(meta["config"])
    save_file(state, str(out["config"]), metadata={**meta, "config": json.dumps({**config, "colour": "red"})})
    return out


@pytest.mark.parametrize("kind", ["vla", "qa"])
def test_weights_that_cannot_load_are_one_line(kind: str, tmp_path: Path) -> None:
    for what, path in bad_files(kind, tmp_path).items():
        with pytest.raises(ModelError) as info:
            LOADERS[kind](path)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message, (what, message)
        assert is_permanent(info.value)  # a node loading them is not restarted


def test_eval_with_bad_weights_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for what, path in bad_files("vla", tmp_path).items():
        code = main(["eval", "--tasks", "reach", "--decodings", "ar", "--clocks", "lockstep", "--episodes", "1",
                     "--weights", str(path)])
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert code == 2, what
        assert len(err) == 1 and err[0].startswith(f"agentrt eval: error: {path}: "), (what, err)
        assert captured.out == "", what  # no half table


def test_a_frame_off_the_wire_into_the_qa_model_prints_no_warning() -> None:
    """`agentrt serve` printed torch's non-writable-array warning at every start: wire frames are read-only."""
    script = """
import warnings
import numpy as np
from agentrt import wire
from agentrt.messages import Frame
from policies.qa.runtime import load_nano_qa, pixels
frame = wire.decode(bytes(wire.encode(Frame("camera", 0, 1, np.full((24, 32, 3), 200, np.uint8)))))  # as zmq gives it
assert not frame.image.flags.writeable
writable = pixels(frame.image.copy(), 16)
warnings.simplefilter("error")
assert (pixels(frame.image, 16) == writable).all()
load_nano_qa("").ingest(frame.image, 1)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
