"""The shipped weights: they load, drive one short lockstep episode, and run as a node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentrt.errors import ConfigError
from policies.vla.policy import NanoPolicy, PolicyConfig, default_weights

pytestmark = pytest.mark.skipif(not default_weights("ar").exists(), reason="no shipped weights")


def test_policy_act_returns_a_chunk_and_jacobi_equals_ar() -> None:
    image = np.full((64, 64, 3), 128, np.uint8)
    state = np.array([0.45, 0.0, 0.3, 1.0], np.float32)
    ar = NanoPolicy(PolicyConfig(decoding="ar"))
    chunk, info = ar.act(image, state, "touch the red cube")
    c = ar.model.config
    assert chunk.shape == (c.chunk_steps, c.action_dims) and chunk.dtype == np.float32
    assert info.iterations == c.chunk_tokens - 1
    jac = NanoPolicy(PolicyConfig(decoding="jacobi"), model=ar.model)
    chunk_j, _ = jac.act(image, state, "touch the red cube")
    assert np.array_equal(chunk, chunk_j)


def test_one_lockstep_reach_episode() -> None:
    from policies.vla.evaluate import evaluate_policy

    policy = NanoPolicy(PolicyConfig(decoding="ar"))
    row = evaluate_policy(policy, "reach", decoding="ar", episodes=1, seed=100_000)
    assert row.episodes == 1 and row.decode_ms > 0 and row.iterations > 0


def test_node_answers_a_frame_with_a_chunk_echoing_its_seq() -> None:
    from agentrt.messages import ActionChunk, Frame, RobotState
    from agentrt.testing import MockNode
    from policies.vla.node import NanoVLANode

    harness = MockNode(NanoVLANode, params={"decoding": "ar"})
    node = harness.node
    harness.setup()
    pose = np.array([0.45, 0.0, 0.3, 0, 0, 0, 1.0])
    silent = RobotState("panda", 0, 1, np.zeros(9), np.zeros(9), pose, 1.0, 6)
    state = RobotState("panda", 1, 2, np.zeros(9), np.zeros(9), pose, 1.0, 7, instruction="touch the red cube", episode=0)
    frame6 = Frame("scene", 6, 100, np.zeros((64, 64, 3), np.uint8))
    frame7 = Frame("scene", 7, 123, np.zeros((64, 64, 3), np.uint8))
    out = harness.run(inputs=[("state", silent), ("frames", frame6), ("state", state), ("frames", frame7), ("frames", frame7)])
    chunks = [m for name, m in out if name == "actions"]
    # No instruction on the wire and none configured: the node waits rather than act on nothing.
    # Then the repeated frame is answered once.
    assert len(chunks) == 1 and isinstance(chunks[0], ActionChunk)
    assert chunks[0].frame_seq == 7 and chunks[0].t_capture_ns == 123 and chunks[0].actions.shape[1] == 4
    assert chunks[0].robot == "panda"  # addressed to the robot whose state it planned from (the sim refuses others)
    assert node.episode == 0 and node.instruction(state) == "touch the red cube"
    harness.close()


def test_node_instruction_param_overrides_the_wire() -> None:
    from agentrt.messages import RobotState
    from agentrt.testing import MockNode
    from policies.vla.node import NanoVLANode

    harness = MockNode(NanoVLANode, params={"decoding": "ar", "instruction": "push the red cube to the left"})
    harness.setup()
    state = RobotState("panda", 1, 2, np.zeros(9), np.zeros(9), np.zeros(7), 1.0, 7, instruction="touch the red cube")
    assert harness.node.instruction(state) == "push the red cube to the left"
    harness.close()


def test_agent_demo_runs_the_sim_and_policy_nodes_and_leaves_video_and_report(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "AGENTRT_RUN_DIR": str(tmp_path / "run"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "agentrt.cli", "demo", "--task", "reach", "--episodes", "1", "--clock", "lockstep",
         "--out", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["episodes"] == 1 and summary["per_episode"][0]["instruction"].startswith("touch the ")
    assert summary["control_hz"] > 0 and summary["latency_p50_ms"] > 0
    assert all(os.path.getsize(v) > 1000 for v in summary["videos"]) and summary["videos"]
    assert (tmp_path / "demo" / "report.json").exists()
    assert "success" in result.stdout and "capture -> chunk" in result.stdout


def test_bench_vla_replays_episodes_through_every_decoding_and_jacobi_stays_exact() -> None:
    from agentrt.bench.vla import measure

    result = measure(episodes=1, max_plans=3)
    modes = result["modes"]
    assert result["chunks"] == 9 and set(modes) == {"ar", "jacobi", "consistency", "consistency-cap4"}
    assert modes["jacobi"]["same_as_ar"] == 1.0 and modes["jacobi"]["bins_from_ar"] == 0.0
    assert modes["ar"]["passes"] == 31 and modes["consistency"]["passes"] <= 4
    assert modes["ar"]["pass_share"] == {"31": 1.0} and abs(sum(modes["consistency"]["pass_share"].values()) - 1) < 1e-9


def test_bench_vla_candidate_weights_run_beside_the_shipped_ones(tmp_path: Path) -> None:
    from agentrt.bench.vla import MODES, candidate_modes, measure
    shipped = default_weights("consistency")
    result = measure(episodes=1, max_plans=3, modes=MODES[:1] + MODES[2:3] + candidate_modes((str(shipped),)))
    ours, theirs = result["modes"]["consistency"], result["modes"]["consistency:nano_vla_cd"]
    assert theirs["weights"] == str(shipped) and ours["weights"] is None
    for key in ("passes", "pass_share", "same_as_ar", "bins_from_ar"):  # the same file decodes the same tokens
        assert theirs[key] == ours[key]
    with pytest.raises(ConfigError, match="^bench vla --cd-weights: no weights file at .*missing.safetensors"):
        candidate_modes((str(tmp_path / "missing.safetensors"),))


def test_jacobi_guess_moves_the_previous_chunk_on_by_whole_steps() -> None:
    policy = NanoPolicy(PolicyConfig(decoding="jacobi", guess_shift_steps=2))
    D = policy.model.config.action_dims
    policy._previous = list(range(8 * D))  # steps 0..7, each D tokens
    guess = policy._shifted_guess()
    assert guess[:D] == list(range(2 * D, 3 * D))  # step 2 comes first
    assert guess[-2 * D :] == list(range(7 * D, 8 * D)) * 2  # the last step repeated behind
    assert len(guess) == 8 * D
