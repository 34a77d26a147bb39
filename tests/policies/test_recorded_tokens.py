"""Every decoding mode of the shipped nano VLA gives the tokens it gave before the decoding got faster.

``vla_tokens.npz`` was recorded (``record_vla_tokens.py``) from closed-loop observations of the three tasks
before the static KV cache and the cheaper passes went in. Consistency decoding exits early, so only a
recording can pin its outputs; AR and Jacobi are pinned too, and Jacobi must still equal AR.
"""

from __future__ import annotations

import numpy as np
import pytest

from agentrt.bench.vla import MODES
from policies.vla.policy import NanoPolicy, PolicyConfig, default_weights
from tests.policies.record_vla_tokens import FIXTURE

pytestmark = pytest.mark.skipif(not default_weights("ar").exists(), reason="no shipped weights")


@pytest.mark.parametrize("graphs", ["auto", "static"])  # static: the passes graphs replay, uncaptured
@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
def test_each_mode_decodes_the_recorded_tokens_with_the_recorded_passes(mode, graphs: str) -> None:
    data = np.load(FIXTURE)
    policy = NanoPolicy(PolicyConfig(decoding=mode.decoding, max_iterations=mode.max_iterations,
                                     tolerance_bins=mode.tolerance_bins, graphs=graphs))
    episode = data["episode"]
    for i in range(len(episode)):
        if i == 0 or episode[i] != episode[i - 1]:
            policy.reset()
        _, info = policy.act(data["images"][i], data["states"][i], str(data["instructions"][i]))
        assert policy._previous == data[f"tokens_{mode.name}"][i].tolist(), f"observation {i}"
        assert info.iterations == data[f"passes_{mode.name}"][i], f"observation {i}"
    assert np.array_equal(data["tokens_jacobi"], data["tokens_ar"])  # the recording itself is exact
