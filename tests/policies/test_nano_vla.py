"""The nano VLA: tokenizers, save/load, Jacobi == AR on the model, and the tiny pipeline collect -> train -> distill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agentrt.engine import NativeRunner, greedy_decode, jacobi_decode, prefill
from agentrt.errors import ConfigError, ModelError
from policies.vla.model import (
    N_BINS,
    UNK,
    ActionTokenizer,
    NanoVLA,
    NanoVLAConfig,
    TextTokenizer,
    load_model,
    pixels,
    save_model,
)

TINY = {"image_size": 32, "patch_size": 8, "vit_width": 32, "vit_depth": 1, "vit_heads": 2, "pool": 2,
        "width": 32, "depth": 1, "heads": 2, "chunk_steps": 2}


def test_action_tokens_round_trip_within_half_a_bin() -> None:
    cfg = NanoVLAConfig(words=["touch", "red", "cube"])
    tok = ActionTokenizer(cfg)
    rng = np.random.default_rng(0)
    actions = np.concatenate([rng.uniform(-0.02, 0.02, (8, 3)), rng.integers(0, 2, (8, 1))], 1).astype(np.float32)
    ids = tok.encode(actions)
    assert ids.shape == (32,) and ids.min() >= cfg.action_start and ids.max() < cfg.vocab_size
    back = tok.decode(ids)
    assert np.abs(back[:, :3] - actions[:, :3]).max() <= 0.5 * 0.04 / N_BINS + 1e-7
    assert np.array_equal(back[:, 3], actions[:, 3])


def test_unknown_words_become_unk_and_text_has_a_fixed_length() -> None:
    cfg = NanoVLAConfig(words=["touch", "the", "red", "cube"])
    ids = TextTokenizer(cfg).encode("Tap the red cube!")
    assert len(ids) == cfg.text_len and ids[1] == UNK and ids[2] == 4 + cfg.words.index("the")


def test_config_rejects_a_pool_that_does_not_divide_the_grid() -> None:
    with pytest.raises(ConfigError, match="pool"):
        NanoVLAConfig(image_size=64, patch_size=8, pool=3)


def test_save_load_round_trip_and_missing_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = NanoVLA(NanoVLAConfig(words=["a", "b"], **TINY)).eval()
    save_model(model, tmp_path / "m.safetensors", {"note": "x"}, robot="panda")
    loaded, extra = load_model(tmp_path / "m.safetensors")
    assert extra == {"note": "x", "robot": "panda"} and loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(ModelError, match="agentrt train"):
        load_model(tmp_path / "none.safetensors")


def test_teacher_forcing_matches_cached_decoding() -> None:
    """The training forward and the engine's cached greedy decode see the same model: same tokens."""
    torch.manual_seed(1)
    cfg = NanoVLAConfig(words=["a"], **TINY)
    model = NanoVLA(cfg).eval()
    img = torch.randint(0, 255, (32, 32, 3), dtype=torch.uint8).numpy()
    with torch.no_grad():
        prompt, _ = model.prompt(model.perceive(pixels(img)), torch.zeros(1, 4), torch.tensor([TextTokenizer(cfg).encode("a")]))
        runner = NativeRunner(model.decoder)
        cache, last = prefill(runner, prompt)
        ar = greedy_decode(runner, None, cfg.chunk_tokens, action_ids=cfg.action_ids, cache=cache, last_logits=last)
        logits = model.action_logits(prompt, torch.tensor([ar.tokens]))
        lo, hi = cfg.action_ids
        assert (logits[0, :, lo:hi].argmax(-1) + lo).tolist() == ar.tokens
        cache, last = prefill(runner, prompt)
        jac = jacobi_decode(runner, None, cfg.chunk_tokens, action_ids=cfg.action_ids, cache=cache, last_logits=last)
        assert jac.tokens == ar.tokens


def test_keypoint_loss_is_lowest_at_the_projected_place_and_ignores_missing_places() -> None:
    from policies.vla.model import Keypoints
    from policies.vla.train import keypoint_loss
    from sims.camera import project_scene

    model = NanoVLA(NanoVLAConfig(words=["a"], **TINY))
    place = torch.tensor([[[0.55, 0.1, 0.02], [0.0, 0.0, 0.0]]])  # a target, no goal
    side = 16
    u, v = project_scene(place[0, 0].numpy())
    col, row = int((u + 1) / 2 * side), int((v + 1) / 2 * side)
    xy = model.normalise_position(place[:, :, :2])

    def heat_at(r: int, c: int) -> torch.Tensor:
        logits = torch.zeros(1, 2, side * side)
        logits[0, :, r * side + c] = 12.0
        return keypoint_loss(model, Keypoints(xy, logits), place)[0]

    right, wrong = heat_at(row, col), heat_at((row + 6) % side, (col + 6) % side)
    assert right < wrong
    err = keypoint_loss(model, Keypoints(xy + torch.tensor([[[0.0, 0.0], [5.0, 5.0]]]), torch.zeros(1, 2, side * side)), place)[1]
    assert float(err) == 0.0  # keypoint 1 is wrong by a mile, but the sample has no goal


def test_collect_records_goal_and_wrist_camera(tmp_path: Path) -> None:
    from policies.vla.data import CollectConfig, collect, load_episodes

    collect(CollectConfig(tasks=("pick_place",), episodes=1, image_size=32, image_every=8, wrist=True, noise_m=0.0,
                          out_dir=str(tmp_path)))
    ep = next(load_episodes(tmp_path))
    assert ep.wrist_images.shape == ep.images.shape and ep.images.shape[1:] == (32, 32, 3)
    assert ep.goals.shape == (len(ep.actions), 3) and np.all(ep.goals[:, :2] != 0)  # the tray's centre
    assert not np.array_equal(ep.wrist_images, ep.images)


def test_collect_train_distill_smoke(tmp_path: Path) -> None:
    """A few steps of every stage on a two-episode dataset (no assertion on quality)."""
    from policies.vla.data import CollectConfig, collect, load_episodes
    from policies.vla.distill import DistillConfig, distill
    from policies.vla.train import TrainConfig, train

    info = collect(CollectConfig(tasks=("reach",), episodes=2, image_size=32, out_dir=str(tmp_path / "data")))
    assert info["total_episodes"] >= 1
    ep = next(load_episodes(tmp_path / "data"))
    assert ep.images.shape[1:] == (32, 32, 3) and ep.actions.shape[1] == 4 and len(ep.images) == len(ep.image_steps) == (len(ep.actions) + 1) // 2
    weights = tmp_path / "w.safetensors"
    summary = train(TrainConfig(data_dir=str(tmp_path / "data"), out_dir=str(tmp_path / "run"), weights=str(weights),
                                steps=3, batch_size=4, ckpt_every=2, model=TINY))
    assert summary["steps"] == 3 and weights.exists() and (tmp_path / "run" / "ckpt.pt").exists()
    resumed = train(TrainConfig(data_dir=str(tmp_path / "data"), out_dir=str(tmp_path / "run"), weights=str(weights),
                                steps=4, batch_size=4, model=TINY))
    assert resumed["steps"] == 4
    out = distill(DistillConfig(teacher=str(weights), data_dir=str(tmp_path / "data"), out=str(tmp_path / "cd.safetensors"),
                                trajectories=8, steps=2, batch_size=4))
    assert out["trajectories"] == 8 and (tmp_path / "cd.safetensors").exists()
    # the weights name the robot that recorded the data, and the student its teacher's
    assert load_model(weights)[1]["robot"] == load_model(tmp_path / "cd.safetensors")[1]["robot"] == "panda"


def test_demonstrations_end_with_the_experts_next_moves(tmp_path: Path) -> None:
    """A push ends at 8 cm of a 14 cm push: the last chunks go on pushing (the expert's moves past the end),
    not stop at the success margin; a dataset without them (recorded before, or LeRobot) holds still."""
    from dataclasses import replace

    from policies.vla.data import AFTER_END_STEPS, CollectConfig, chunk_padding, collect, load_episodes
    from policies.vla.train import load_samples

    collect(CollectConfig(tasks=("push",), episodes=1, image_size=32, image_every=1, noise_m=0.0, out_dir=str(tmp_path)))
    ep = next(load_episodes(tmp_path))
    assert ep.after_end.shape == (AFTER_END_STEPS, 4)
    push = ep.actions[-1, :3]
    np.testing.assert_allclose(ep.after_end[0, :3], push, atol=2e-3)  # still pushing the same way
    config = NanoVLAConfig(**{**TINY, "image_size": 32, "words": ["push"]})
    last = load_samples(str(tmp_path), config).raw_actions[-1]  # [K, 4], starting at the last recorded step
    np.testing.assert_array_equal(last[1:], ep.after_end[: config.chunk_steps - 1])
    held = chunk_padding(replace(ep, after_end=np.zeros((0, 4), np.float32)), 3)
    np.testing.assert_array_equal(held, [[0.0, 0.0, 0.0, ep.actions[-1, 3]]] * 3)
