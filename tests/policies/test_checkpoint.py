"""One checkpoint save/load (``policies.checkpoint``) behind both nano models: the same file layout
for each, and a file of one model given to the other's loader says whose it is, in one line."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from agentrt.errors import ModelError
from policies import checkpoint
from policies.qa import model as nano_qa
from policies.vla import model as nano_vla

VLA = nano_vla.NanoVLAConfig(words=["a", "red"], image_size=32, patch_size=8, vit_width=32, vit_depth=1, vit_heads=2,
                             pool=2, width=32, depth=1, heads=2, chunk_steps=2)
QA = nano_qa.NanoQAConfig(image_size=32, stem_channels=8, vit_patch=2, vit_width=32, vit_depth=1, vit_heads=2,
                          width=32, depth=1, heads=2, words=["red", "green", "blue", "yellow", "purple", "cube",
                                                              "cylinder", "sphere", "moved"])


def _models() -> dict[str, tuple[torch.nn.Module, object]]:
    torch.manual_seed(0)
    return {"vla": (nano_vla.NanoVLA(VLA), nano_vla), "qa": (nano_qa.NanoQA(QA), nano_qa)}


def _save(kind: str, module: object, model: torch.nn.Module, path: Path) -> None:
    extra = {"training": {"steps": 3}}
    if kind == "vla":
        nano_vla.save_model(model, path, extra, robot="panda")  # type: ignore[arg-type]
    else:
        nano_qa.save_model(model, path, extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["vla", "qa"])
def test_both_models_save_and_load_through_the_one_checkpoint(kind: str, tmp_path: Path) -> None:
    model, module = _models()[kind]
    path = tmp_path / f"{kind}.safetensors"
    _save(kind, module, model, path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        stored = set(f.keys())
    # the layout the shipped weights have: config as JSON, the tied head left out, a tag only on the QA model's
    assert json.loads(meta["config"]) == json.loads(json.dumps(asdict(model.config)))  # type: ignore[call-overload]
    assert meta.get("kind") == ("nano_qa" if kind == "qa" else None)
    assert checkpoint.TIED not in stored and stored == set(model.state_dict()) - {checkpoint.TIED}
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["config"] == json.loads(meta["config"]) and card["training"] == {"steps": 3}
    loaded, extra = module.load_model(path)  # type: ignore[attr-defined]
    assert extra["training"] == {"steps": 3} and "kind" not in extra and "config" not in extra
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert loaded.config == model.config and not loaded.training


def test_one_models_file_given_to_the_others_loader_says_whose_it_is(tmp_path: Path) -> None:
    models = _models()
    for kind, (model, module) in models.items():
        _save(kind, module, model, tmp_path / f"{kind}.safetensors")
    for kind, other, whose in (("vla", "qa", "nano VLA"), ("qa", "vla", "nano_qa")):
        path = tmp_path / f"{kind}.safetensors"
        with pytest.raises(ModelError) as info:
            models[other][1].load_model(path)  # type: ignore[attr-defined]
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message and whose in message, message


def test_the_shipped_weights_load_through_the_one_checkpoint() -> None:
    weights = Path(__file__).resolve().parents[2] / "policies" / "weights"
    for name, module in (("nano_vla", nano_vla), ("nano_vla_cd", nano_vla), ("nano_qa", nano_qa)):
        model, extra = module.load_model(weights / f"{name}.safetensors")  # type: ignore[attr-defined]
        card = json.loads((weights / f"{name}.json").read_text())
        assert {"config", *extra} == set(card), name
