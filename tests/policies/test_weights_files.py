"""Training never touches the shipped weights unless asked by name, and the files it writes are normal files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from agentrt.cli.__main__ import build_parser, main
from policies.qa import model as nano_qa
from policies.vla import model as nano_vla

TINY = {"image_size": 32, "patch_size": 8, "vit_width": 32, "vit_depth": 1, "vit_heads": 2, "pool": 2,
        "width": 32, "depth": 1, "heads": 2, "chunk_steps": 2}
SHIPPED = ("nano_vla.safetensors", "nano_vla.json", "nano_vla_cd.safetensors", "nano_vla_cd.json",
           "nano_qa.safetensors", "nano_qa.json")


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_saved_weights_have_normal_permissions(tmp_path: Path, umask_022: None) -> None:
    """safetensors' own save_file leaves 0600: a copied or shipped file then is unreadable to others."""
    torch.manual_seed(0)
    nano_vla.save_model(nano_vla.NanoVLA(nano_vla.NanoVLAConfig(words=["a"], **TINY)), tmp_path / "vla.safetensors",
                        robot="panda")
    qa_config = nano_qa.NanoQAConfig(image_size=32, stem_channels=8, vit_patch=2, vit_width=32, vit_depth=1, vit_heads=2,
                                     width=32, depth=1, heads=2)
    nano_qa.save_model(nano_qa.NanoQA(qa_config), tmp_path / "qa.safetensors")
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["qa.json", "qa.safetensors", "vla.json", "vla.safetensors"]  # no temp file left behind
    for name in written:
        assert _mode(tmp_path / name) == 0o644, name
    nano_vla.load_model(tmp_path / "vla.safetensors")
    nano_qa.load_model(tmp_path / "qa.safetensors")


def test_default_outputs_of_every_training_command_are_under_runs() -> None:
    parser = build_parser()
    train = parser.parse_args(["train"])
    distill = parser.parse_args(["distill"])
    train_qa = parser.parse_args(["train-qa"])
    from agentrt.cli.distill import config as distill_config
    from agentrt.cli.train import config as train_config

    outputs = [Path(train_config(train).weights_path), Path(distill_config(distill).out), Path(train_qa.out)]
    for out in outputs:
        assert not out.is_absolute() and out.parts[0] == "runs", out


def test_train_and_distill_from_the_repository_root_leave_the_shipped_weights_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None,
) -> None:
    from policies.vla.data import CollectConfig, collect

    collect(CollectConfig(tasks=("reach",), episodes=2, image_size=32, out_dir=str(tmp_path / "data")))
    root = tmp_path / "repo"
    shipped = root / "policies" / "weights"
    shipped.mkdir(parents=True)
    for name in SHIPPED:
        (shipped / name).write_bytes(b"shipped " + name.encode())
    monkeypatch.chdir(root)
    sizes = [f"--set={k}={v}" for k, v in TINY.items()]
    assert main(["train", "--data", str(tmp_path / "data"), "--steps", "2", "--batch-size", "4", "--threads", "1",
                 *sizes]) == 0
    assert main(["distill", "--teacher", "runs/train/nano_vla.safetensors", "--data", str(tmp_path / "data"),
                 "--trajectories", "4", "--steps", "1", "--batch-size", "2", "--threads", "1"]) == 0
    for name in SHIPPED:
        assert (shipped / name).read_bytes() == b"shipped " + name.encode(), name
    for made in ("runs/train/nano_vla.safetensors", "runs/distill/nano_vla_cd.safetensors"):
        assert _mode(root / made) == 0o644, made
        nano_vla.load_model(root / made)
