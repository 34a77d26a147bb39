"""BatchPolicy on the shipped weights: each robot's row equals its own NanoPolicy, token for token and pass for pass.

Twelve robots replay recorded closed-loop observations of the three tasks (12 episodes, 12 instructions),
each with its own history (the previous chunk is its Jacobi guess); episodes of different lengths make the
batches shrink, and the rows of one batch converge after different numbers of passes.
"""

from __future__ import annotations

import numpy as np
import pytest

from agentrt.bench.vla import MODES, RECORDED, load_observations
from policies.vla.batch import BatchPolicy, BatchRequest
from policies.vla.policy import NanoPolicy, PolicyConfig, default_weights

pytestmark = pytest.mark.skipif(not default_weights("ar").exists(), reason="no shipped weights")

PLANS = 6


def _robots() -> dict[str, list[tuple[np.ndarray, np.ndarray, str]]]:
    observed = load_observations(RECORDED, episodes=4, max_plans=PLANS)
    robots = {}
    for task, episodes in observed.items():
        for e, episode in enumerate(episodes):
            cut = PLANS - (e % 3)  # episodes of different lengths: robots leave, the batch shrinks
            robots[f"{task}-{e}"] = [(image, state, str(instruction)) for image, state, instruction in episode[:cut]]
    return robots


@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
def test_each_row_equals_its_robots_own_policy(mode) -> None:
    robots = _robots()
    assert len({steps[0][2] for steps in robots.values()}) > 3  # many instructions
    config = PolicyConfig(decoding=mode.decoding, max_iterations=mode.max_iterations, tolerance_bins=mode.tolerance_bins)
    shared = NanoPolicy(config)
    batch = BatchPolicy(shared)
    own = {name: NanoPolicy(config, model=shared.model) for name in robots}
    sizes, mixed = [], 0
    for plan in range(PLANS):
        requests = [BatchRequest(name, *steps[plan]) for name, steps in robots.items() if plan < len(steps)]
        chunks, infos = batch.act_batch(requests)
        sizes.append(len(requests))
        mixed += len({info.iterations for info in infos}) > 1
        for request, chunk, info in zip(requests, chunks, infos, strict=True):
            expected, expected_info = own[request.robot].act(request.image, request.state, request.instruction)
            assert batch._previous[request.robot] == own[request.robot]._previous, (request.robot, plan)
            assert np.array_equal(chunk, expected)
            assert info.iterations == expected_info.iterations and info.early_exit == expected_info.early_exit
    assert len(set(sizes)) > 1  # the batch shrank as episodes ended
    if mode.decoding != "ar":
        assert mixed  # rows of one batch converged after different numbers of passes


def test_a_batch_of_one_is_the_robots_own_policy() -> None:
    steps = next(iter(_robots().values()))
    config = PolicyConfig(decoding="consistency")
    batch, own = BatchPolicy(NanoPolicy(config)), NanoPolicy(config)
    batch.act_batch([BatchRequest("other", *steps[-1])])  # another robot's memory must not leak into this one's
    for step in steps:
        (chunk,), (info,) = batch.act_batch([BatchRequest("alone", *step)])
        expected, expected_info = own.act(*step)
        assert np.array_equal(chunk, expected) and info.iterations == expected_info.iterations


def test_reset_forgets_one_robot_only() -> None:
    robots = _robots()
    batch = BatchPolicy(NanoPolicy(PolicyConfig(decoding="jacobi")))
    names = list(robots)[:3]
    batch.act_batch([BatchRequest(n, *robots[n][0]) for n in names])
    batch.reset(names[0])
    assert sorted(batch.robots) == sorted(names[1:])
    with pytest.raises(ValueError):
        batch.act_batch([BatchRequest(names[1], *robots[names[1]][1]), BatchRequest(names[1], *robots[names[1]][2])])
