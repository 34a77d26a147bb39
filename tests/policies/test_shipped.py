"""The shipped weights: they load, drive one short lockstep episode, and run as a node."""

from __future__ import annotations

import numpy as np
import pytest

from policies.policy import NanoPolicy, PolicyConfig, default_weights

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
    from policies.evaluate import evaluate_policy

    policy = NanoPolicy(PolicyConfig(decoding="ar"))
    row = evaluate_policy(policy, "reach", decoding="ar", episodes=1, seed=100_000)
    assert row.episodes == 1 and row.decode_ms > 0 and row.iterations > 0


def test_node_answers_a_frame_with_a_chunk_echoing_its_seq() -> None:
    from agentrt.messages import ActionChunk, Frame, RobotState
    from agentrt.testing import MockNode
    from policies.node import NanoVLANode

    harness = MockNode(NanoVLANode, params={"task": "reach", "seed": 3, "decoding": "ar"})
    home = harness.node  # setup runs in run(); build inputs after it knows the home pose
    harness.setup()
    state = RobotState("panda", 0, 1, np.zeros(9), np.zeros(9), np.array([*home._home, 0, 0, 0, 1.0]), 1.0, 7)
    frame = Frame("scene", 7, 123, np.zeros((64, 64, 3), np.uint8))
    out = harness.run(inputs=[("state", state), ("frames", frame), ("frames", frame)])
    chunks = [m for name, m in out if name == "actions"]
    assert len(chunks) == 1 and isinstance(chunks[0], ActionChunk)  # the repeated frame is answered once
    assert chunks[0].frame_seq == 7 and chunks[0].t_capture_ns == 123 and chunks[0].actions.shape[1] == 4
    assert home.episode == 0 and "touch" in home.instruction(0)
    harness.close()
