"""The wrist camera as a second image: the model reads it, training loads it, the loop renders it for a
policy that wants it, and the paths that cannot carry it refuse such weights in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agentrt.errors import ConfigError
from policies.vla.model import NanoVLA, NanoVLAConfig, TextTokenizer, pixels, save_model
from policies.vla.train import grow_from

TINY = {"image_size": 32, "patch_size": 8, "vit_width": 32, "vit_depth": 1, "vit_heads": 2, "pool": 2,
        "width": 32, "depth": 1, "heads": 2, "chunk_steps": 2}


def _prompt(model: NanoVLA, scene: np.ndarray, wrist: np.ndarray | None = None) -> torch.Tensor:
    image = scene if wrist is None else np.concatenate([scene, wrist], axis=-1)
    text = torch.tensor([TextTokenizer(model.config).encode("touch the red cube")])
    with torch.no_grad():
        return model.prompt(model.perceive(pixels(image)), torch.zeros(1, 4), text)[0]


def test_the_wrist_image_adds_its_tokens_before_the_state_and_changes_the_prompt() -> None:
    torch.manual_seed(0)
    plain = NanoVLA(NanoVLAConfig(words=["touch", "red", "cube"], **TINY)).eval()
    wrist = NanoVLA(NanoVLAConfig(words=["touch", "red", "cube"], wrist=True, **TINY)).eval()
    assert grow_from(wrist, plain.state_dict()) == ["wrist_embed"]
    assert wrist.config.prompt_len == plain.config.prompt_len + plain.config.image_tokens
    rng = np.random.default_rng(0)
    scene, camera = (rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(2))
    before, after = _prompt(plain, scene), _prompt(wrist, scene, camera)
    n = plain.config.prompt_len - 1
    # grown from scene-only weights: image, words and keypoints where they were, the state last
    assert torch.equal(after[:, :n], before[:, :n]) and torch.equal(after[:, -1], before[:, -1])
    other = _prompt(wrist, scene, rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    assert not torch.equal(other[:, n:-1], after[:, n:-1]) and torch.equal(other[:, :n], after[:, :n])
    with pytest.raises(ConfigError, match="expected images with 6 channels"):
        wrist.perceive(pixels(scene))
    with pytest.raises(ConfigError, match="expected images with 3 channels"):
        plain.perceive(pixels(np.concatenate([scene, camera], axis=-1)))


def test_wrist_training_loads_both_cameras_and_the_loop_renders_the_wrist_for_the_policy(tmp_path: Path) -> None:
    from policies.vla.data import CollectConfig, collect
    from policies.vla.evaluate import evaluate_policy
    from policies.vla.policy import NanoPolicy, PolicyConfig
    from policies.vla.train import TrainConfig, load_samples, model_config, train

    data = tmp_path / "data"
    collect(CollectConfig(tasks=("reach",), episodes=1, image_size=32, image_every=4, wrist=True, noise_m=0.0,
                          out_dir=str(data)))
    config = model_config(str(data), (), {**TINY, "wrist": True})
    samples = load_samples(str(data), config)
    assert samples.images.shape[1:] == (32, 32, 6)
    weights = tmp_path / "w.safetensors"
    train(TrainConfig(data_dir=str(data), out_dir=str(tmp_path / "run"), weights=str(weights), steps=2, batch_size=4,
                      model={**TINY, "wrist": True}))
    policy = NanoPolicy(PolicyConfig(weights=str(weights), device="cpu"))
    assert policy.wants_wrist
    scene = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ConfigError, match=r"take the wrist camera too .*give act\(\.\.\., wrist=image\)"):
        policy.act(scene, np.zeros(4, np.float32), "touch the red cube")
    chunk, _ = policy.act(scene, np.zeros(4, np.float32), "touch the red cube", wrist=scene)
    assert chunk.shape == (2, 4)
    seen: list[np.ndarray] = []
    act = policy.act
    policy.act = lambda *a, wrist=None: (seen.append(wrist), act(*a, wrist=wrist))[1]  # type: ignore[method-assign]
    row = evaluate_policy(policy, "reach", decoding="ar", episodes=1, clock="lockstep", seed=100000)
    assert row.episodes == 1 and seen and all(w is not None and w.shape == (32, 32, 3) for w in seen)

    scene_only = tmp_path / "scene"
    collect(CollectConfig(tasks=("reach",), episodes=1, image_size=32, image_every=4, noise_m=0.0, out_dir=str(scene_only)))
    with pytest.raises(ConfigError, match="has no wrist images.*collect with `agentrt collect --wrist`"):
        load_samples(str(scene_only), config)


def test_the_policy_server_refuses_wrist_weights(tmp_path: Path) -> None:
    from policies.vla.batch import BatchPolicy
    from policies.vla.policy import NanoPolicy, PolicyConfig

    weights = tmp_path / "w.safetensors"
    save_model(NanoVLA(NanoVLAConfig(words=["touch"], wrist=True, **TINY)), weights, robot="panda")
    with pytest.raises(ConfigError, match="^policy server: these weights take the wrist camera too"):
        BatchPolicy(NanoPolicy(PolicyConfig(weights=str(weights), device="cpu")))


def test_the_policy_node_refuses_wrist_weights(tmp_path: Path) -> None:
    from agentrt.testing import MockNode
    from policies.vla.node import NanoVLANode

    weights = tmp_path / "w.safetensors"
    save_model(NanoVLA(NanoVLAConfig(words=["touch"], wrist=True, **TINY)), weights, robot="panda")
    with pytest.raises(ConfigError, match="^policy node: .*w.safetensors take the wrist camera too, which the sim node"):
        with MockNode(NanoVLANode, params={"weights": str(weights), "decoding": "ar", "device": "cpu"}) as harness:
            harness.run(inputs=[])
