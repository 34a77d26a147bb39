"""--device / --dtype reach the models: the nano VLA's policy and node, the QA loaders and node (CPU here; the
same code runs on a GPU: `agentrt bench device --device cuda`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agentrt.engine.device import resolve_dtype
from agentrt.errors import ConfigError
from agentrt.testing import MockNode

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


def test_policy_config_places_the_model_and_its_inputs() -> None:
    from policies.vla.policy import NanoPolicy, PolicyConfig

    policy = NanoPolicy(PolicyConfig(decoding="ar", device="cpu", dtype="bfloat16"))
    assert {p.dtype for p in policy.model.parameters()} == {torch.bfloat16}
    assert policy.runner.device == torch.device("cpu")
    x = policy.prepare(np.zeros((80, 100, 3), np.uint8))
    assert x.dtype == torch.bfloat16 and x.device == policy.device and x.shape == (1, 3, 64, 64)


def test_a_model_given_in_memory_runs_where_it_is() -> None:
    """The training loop's model (quick_eval): the policy follows it, never moves it under the optimiser."""
    from policies.vla.model import load_model
    from policies.vla.policy import NanoPolicy, PolicyConfig, default_weights

    model, _ = load_model(default_weights("ar"))
    policy = NanoPolicy(PolicyConfig(decoding="ar", dtype="bfloat16"), model=model)
    assert policy.dtype == torch.float32 and {p.dtype for p in model.parameters()} == {torch.float32}
    chunk, _ = policy.act(np.zeros((64, 64, 3), np.uint8), np.zeros(4, np.float32), "tap the red cube")
    assert np.isfinite(chunk).all()


@no_gpu
def test_a_gpu_asked_for_without_one_is_one_line() -> None:
    from policies.vla.policy import PolicyConfig

    with pytest.raises(ConfigError, match="no CUDA device here; use --device cpu") as caught:
        PolicyConfig(device="cuda")
    assert "\n" not in str(caught.value)


def test_bfloat16_actions_stay_close_to_float32() -> None:
    """On recorded closed-loop observations: the same gripper command, xyz within a few of 256 bins, and
    Jacobi's fixed point still AR's output (exact in float32; bfloat16 rounding could flip a near-tie)."""
    from agentrt.bench.vla import RECORDED, load_observations
    from policies.vla.policy import NanoPolicy, PolicyConfig

    observations = load_observations(RECORDED, episodes=1, max_plans=2)
    fp32 = NanoPolicy(PolicyConfig(decoding="ar", device="cpu"))
    bf16 = NanoPolicy(PolicyConfig(decoding="ar", device="cpu", dtype="bfloat16"))
    jacobi = NanoPolicy(PolicyConfig(decoding="jacobi", device="cpu", dtype="bfloat16"))
    xyz, grip, same = [], [], []
    for episodes in observations.values():
        for image, state, instruction in episodes[0]:
            a, b, j = (p.actions.to_bins(p.act(image, state, instruction)[0]) for p in (fp32, bf16, jacobi))
            xyz.append(np.abs(a - b)[:, :-1].mean())
            grip.append((a[:, -1] == b[:, -1]).mean())
            same.append(np.array_equal(b, j))
    assert len(xyz) == 6
    assert np.mean(xyz) < 8 and np.mean(grip) > 0.9 and np.mean(same) >= 0.8


def test_policy_node_takes_device_and_dtype_params() -> None:
    from policies.vla.node import NanoVLANode

    with MockNode(NanoVLANode, params={"decoding": "ar", "device": "cpu", "dtype": "bfloat16"}) as harness:
        harness.run(inputs=[])
        assert next(harness.node.policy.model.parameters()).dtype == torch.bfloat16


@no_gpu
@pytest.mark.parametrize("node", ["policies.vla.node:NanoVLANode", "policies.qa.node:VideoQANode"])
def test_a_node_asked_for_a_gpu_without_one_fails_its_start_in_one_line(node: str) -> None:
    """The launch file is checked where it is launched, the device where the node runs (its setup)."""
    from agentrt.launch import resolve_class

    with pytest.raises(ConfigError, match="no CUDA device here; use --device cpu") as caught:
        with MockNode(resolve_class(node), params={"device": "cuda"}) as harness:
            harness.run(inputs=[])
    assert "\n" not in str(caught.value)


def test_qa_node_defaults_to_auto_which_is_the_cpu_here() -> None:
    from policies.qa.node import VideoQANode, VideoQANodeConfig

    assert VideoQANodeConfig().device == "auto" and VideoQANodeConfig().dtype == "float32"
    with MockNode(VideoQANode, params={}) as harness:
        harness.run(inputs=[])
        expected = "cuda" if torch.cuda.is_available() else "cpu"
        assert harness.node.model.device.type == expected  # type: ignore[attr-defined]


def test_nano_qa_in_bfloat16_ingests_and_answers() -> None:
    from agentrt.pattern import synthetic_image
    from policies.qa.node import load_qa_model

    qa = load_qa_model("nano", "cpu", "bfloat16")
    assert next(qa.model.parameters()).dtype == torch.bfloat16  # type: ignore[attr-defined]
    for i in range(3):
        qa.ingest(synthetic_image(i, 96, 96, 3), i * 500_000_000)
    answer = "".join(qa.answer("what colour is the cube?", max_new_tokens=4))
    assert answer and "no frames" not in answer


def test_hugging_face_vlm_in_bfloat16_ingests_and_answers(tmp_path: Path) -> None:
    from agentrt.bench.qa import _frame, build_bench_checkpoint
    from policies.qa.node import load_qa_model

    folder = build_bench_checkpoint(tmp_path / "tiny", "tiny")
    held = {}
    for dtype in ("float32", "bfloat16"):
        qa = load_qa_model(f"hf:{folder}", "cpu", dtype)
        assert next(qa.model.parameters()).dtype == resolve_dtype(dtype)  # type: ignore[attr-defined]
        for i in range(3):
            qa.ingest(_frame(i), i * 1_000_000_000)
        assert "".join(qa.answer("what is the robot holding?", max_new_tokens=3))
        # the window's keys and values alone: memory() also counts the ViT cache's reference, which exists or
        # not by the auto-off decision this process made for the setting (an earlier test may have made it)
        held[dtype] = qa.window.kv_bytes()  # type: ignore[attr-defined]
    assert held["bfloat16"] * 2 == held["float32"]  # the window's keys and values take half the bytes
