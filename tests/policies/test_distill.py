"""Consistency distillation's choices: which samples give trajectories, what the consistency loss aims at,
the instruction's word dropout, and the command line's task weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agentrt.errors import ConfigError
from policies.vla.distill import (
    DistillConfig,
    WarmStart,
    _distill_loss,
    choose_samples,
    distill,
    task_share,
    teacher_log_probs,
    warm_guesses,
)
from policies.vla.model import SPECIALS, NanoVLA, NanoVLAConfig, save_model
from policies.vla.train import Samples

TINY = {"image_size": 32, "patch_size": 8, "vit_width": 32, "vit_depth": 1, "vit_heads": 2, "pool": 2,
        "width": 32, "depth": 1, "heads": 2, "chunk_steps": 2, "keypoints": 0}


def fake_samples(tasks: list[str]) -> Samples:
    n = len(tasks)
    zeros = torch.zeros(n, 3)
    return Samples(images=torch.zeros(n, 32, 32, 3, dtype=torch.uint8), states=torch.zeros(n, 4),
                   text=torch.zeros(n, 8, dtype=torch.long), actions=torch.zeros(n, 8, dtype=torch.long),
                   instructions=[""] * n, tasks=tasks, episode=torch.zeros(n, dtype=torch.long),
                   targets=zeros, goals=zeros, raw_actions=np.zeros((n, 2, 4), np.float32))


def test_choose_samples_without_weights_is_a_plain_permutation() -> None:
    data = fake_samples(["reach"] * 50 + ["pick_place"] * 50)
    got = choose_samples(data, 30, torch.Generator().manual_seed(3))
    assert torch.equal(got, torch.randperm(100, generator=torch.Generator().manual_seed(3))[:30])


def test_task_weights_draw_the_hard_task_more_often_and_zero_never() -> None:
    data = fake_samples(["reach"] * 100 + ["pick_place"] * 100)
    only = choose_samples(data, 60, torch.Generator().manual_seed(0), {"reach": 0.0})
    assert len(set(only.tolist())) == 60 and task_share(data, only) == {"pick_place": 1.0}
    shares = [task_share(data, choose_samples(data, 40, torch.Generator().manual_seed(s), {"pick_place": 4.0}))
              for s in range(20)]
    assert np.mean([s["pick_place"] for s in shares]) > 0.7  # 4:1 odds, drawn without replacement
    plain = [task_share(data, choose_samples(data, 40, torch.Generator().manual_seed(s))) for s in range(20)]
    assert abs(np.mean([s["pick_place"] for s in plain]) - 0.5) < 0.1
    # fewer samples of weight > 0 than asked: all of them, once each
    assert sorted(choose_samples(data, 500, torch.Generator().manual_seed(0), {"reach": 0.0}).tolist()) == list(range(100, 200))
    with pytest.raises(ConfigError, match="leave no sample"):
        choose_samples(data, 10, torch.Generator(), {"reach": 0.0, "pick_place": 0.0})


@pytest.mark.parametrize("bad", [{"word_dropout": 1.0}, {"teacher_weight": -0.5}, {"teacher_weight": float("inf")},
                                 {"task_weights": {"push": -1.0}},
                                 {"task_weights": {"push": float("inf")}},
                                 {"task_weights": {"push": float("nan")}}, {"consistency_target": "teacher"},
                                 {"warm_share": 1.5}, {"warm_jitter_bins": -1.0}, {"warm_shift_steps": -1}])
def test_distill_config_rejects_bad_dropout_and_weights(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="DistillConfig"):
        DistillConfig(teacher="x.safetensors", **bad)  # type: ignore[arg-type]


def test_warm_guesses_look_like_the_policys_first_guess() -> None:
    from policies.vla.policy import shifted_guess

    chunk = torch.arange(100, 132).view(1, 32)  # 8 steps of 4 tokens
    exact = warm_guesses(chunk, 4, WarmStart(1.0, 0.0, 4), torch.Generator(), (100, 356))
    # the demonstration's first 4 steps, the 4th repeated: shifted_guess of the chunk planned 4 steps earlier
    earlier = list(range(84, 100)) + chunk[0, :16].tolist()
    assert exact[0].tolist() == shifted_guess(earlier, 4, 4)
    noisy = warm_guesses(chunk.repeat(200, 1), 4, WarmStart(1.0, 3.0, 4), torch.Generator().manual_seed(0), (100, 356))
    moved = (noisy - exact).view(200, 8, 4)
    assert torch.all(moved[..., 3] == 0)  # gripper tokens kept
    assert 2.5 < moved[..., :3].float().std() < 3.5 and noisy.min() >= 100 and noisy.max() < 356  # clamped to action ids


def test_warm_trajectories_start_from_warm_guesses_and_random_ones_stay_as_they_were() -> None:
    from policies.vla.distill import collect_trajectories

    teacher = NanoVLA(NanoVLAConfig(words=["touch"], **TINY)).eval()
    lo, hi = teacher.config.action_ids
    data = fake_samples(["reach"] * 6)
    data.actions = torch.randint(lo, hi, (6, 8), generator=torch.Generator().manual_seed(1))
    warm = collect_trajectories(teacher, data, 6, torch.Generator().manual_seed(0), warm=WarmStart(1.0, 0.0, 1))
    for m, states in zip(warm.index, warm.states, strict=True):
        assert torch.equal(states[0], warm_guesses(data.actions[m][None], 4, WarmStart(1.0, 0.0, 1), torch.Generator(), (lo, hi))[0])
    off = collect_trajectories(teacher, data, 6, torch.Generator().manual_seed(0), warm=WarmStart(0.0, 3.0, 1))
    plain = collect_trajectories(teacher, data, 6, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(off.states, plain.states, strict=True))  # share 0: no draw, as before


def test_consistency_loss_aims_at_its_target() -> None:
    """With the state y equal to the target, the consistency term is zero: the target is the student's own
    prediction after the target's prefix (the teacher's fixed point y*, or the mixed label)."""
    torch.manual_seed(0)
    model = NanoVLA(NanoVLAConfig(words=["touch", "red", "cube"], **TINY)).eval()
    lo, hi = model.config.action_ids
    B, n = 3, model.config.chunk_tokens
    images = torch.randint(0, 255, (B, 32, 32, 3), dtype=torch.uint8)
    states, text = torch.randn(B, 4), torch.full((B, model.config.text_len), 5)
    label, fixed = torch.randint(lo, hi, (B, n)), torch.randint(lo, hi, (B, n))
    places, count = torch.zeros(B, 2, 3), torch.tensor(1.0)

    def loss(y: torch.Tensor, target: torch.Tensor) -> float:
        return float(_distill_loss(model, images, states, text, y, target, label, places, count, ar_weight=0.0).detach())

    assert loss(label, label) == pytest.approx(0.0, abs=1e-6)  # --consistency-target label
    assert loss(fixed, fixed) == pytest.approx(0.0, abs=1e-6)  # fixed_point: y* apart from the label
    assert loss(label, fixed) > 1e-4 and loss(fixed, label) > 1e-4


def test_teacher_term_is_the_kl_from_the_teachers_distribution() -> None:
    """L_T is zero when the teacher is the student reading the same instruction, and grows when the
    student reads it with its words dropped or is another model."""
    torch.manual_seed(0)
    model = NanoVLA(NanoVLAConfig(words=["touch", "red", "cube"], **TINY)).eval()
    lo, hi = model.config.action_ids
    B, n = 3, model.config.chunk_tokens
    data = fake_samples(["reach"] * B)
    data.images = torch.randint(0, 255, (B, 32, 32, 3), dtype=torch.uint8)
    data.states, data.text = torch.randn(B, 4), torch.full((B, model.config.text_len), 5)
    label = torch.randint(lo, hi, (B, n))
    logp = teacher_log_probs(model, data, torch.arange(B), label, batch=2)  # two batches, joined in order
    assert logp.shape == (B, n, hi - lo) and logp.dtype == torch.float16
    places, count = torch.zeros(B, 2, 3), torch.tensor(1.0)

    def loss(text: torch.Tensor, teacher_logp: torch.Tensor, weight: float = 1.0) -> float:
        return float(_distill_loss(model, data.images, data.states, text, label, label, label, places, count,
                                   ar_weight=0.0, teacher_logp=teacher_logp, teacher_weight=weight).detach())

    same = loss(data.text, logp)
    assert same == pytest.approx(0.0, abs=1e-4)  # float16 targets: not exactly 0
    unknown = torch.full_like(data.text, SPECIALS.index("<unk>"))  # every word dropped
    assert loss(unknown, logp) > 10 * same
    other = NanoVLA(NanoVLAConfig(words=["touch", "red", "cube"], **TINY)).eval()
    assert loss(data.text, teacher_log_probs(other, data, torch.arange(B), label)) > 1e-2
    assert loss(data.text, teacher_log_probs(other, data, torch.arange(B), label), weight=0.0) == pytest.approx(0.0, abs=1e-6)


def test_distill_init_must_share_the_teachers_architecture(tmp_path: Path) -> None:
    teacher = tmp_path / "teacher.safetensors"
    save_model(NanoVLA(NanoVLAConfig(words=["touch"], **TINY)), teacher, robot="panda")
    wider = tmp_path / "wider.safetensors"
    save_model(NanoVLA(NanoVLAConfig(words=["touch"], **{**TINY, "width": 64})), wider, robot="panda")
    from policies.vla.distill import _student
    from policies.vla.model import load_model

    model, _ = load_model(teacher)
    with pytest.raises(ConfigError, match=r"^distill --init .*wider.safetensors: its model differs from the teacher's \(width\)"):
        _student(DistillConfig(teacher=str(teacher), init=str(wider)), model)
    assert _student(DistillConfig(teacher=str(teacher)), model) == (model, {})  # no init: the teacher itself trains
    started, before = _student(DistillConfig(teacher=str(teacher), init=str(teacher)), model)
    assert started is not model and started.training and before == {"path": str(teacher), "distillation": None}


def test_distill_records_word_dropout_and_the_task_share(tmp_path: Path) -> None:
    from policies.vla.data import CollectConfig, collect
    from policies.vla.train import TrainConfig, train

    data = tmp_path / "data"
    collect(CollectConfig(tasks=("reach", "push"), episodes=1, image_size=32, out_dir=str(data)))
    weights = tmp_path / "w.safetensors"
    train(TrainConfig(data_dir=str(data), out_dir=str(tmp_path / "run"), weights=str(weights), steps=1,
                      batch_size=4, model={k: v for k, v in TINY.items() if k != "keypoints"}))
    out = distill(DistillConfig(teacher=str(weights), data_dir=str(data), out=str(tmp_path / "cd.safetensors"),
                                trajectories=12, steps=2, batch_size=4, word_dropout=0.5, task_weights={"reach": 0.0}))
    assert out["task_share"] == {"push": 1.0} and out["config"]["word_dropout"] == 0.5
    again = distill(DistillConfig(teacher=str(weights), data_dir=str(data), out=str(tmp_path / "cd2.safetensors"),
                                  trajectories=8, steps=2, batch_size=4, init=str(tmp_path / "cd.safetensors"),
                                  teacher_weight=1.0))
    assert again["config"]["init"].endswith("cd.safetensors") and again["config"]["teacher_weight"] == 1.0
    assert again["init"]["distillation"]["config"]["word_dropout"] == 0.5  # the earlier student's record, kept


def test_cli_task_weights_parse_and_reject_malformed_pairs() -> None:
    from agentrt.cli.distill import task_weights

    assert task_weights(["pick_place=2", "reach=0.5"]) == {"pick_place": 2.0, "reach": 0.5}
    for bad in ("pick_place", "=2", "pick_place=lots", "pick_place=", "push=true"):
        with pytest.raises(ConfigError, match="^--task-weight: expected TASK=WEIGHT"):
            task_weights([bad])
