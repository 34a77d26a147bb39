"""Record what the shipped nano VLA decodes on a few fixed closed-loop observations (``vla_tokens.npz``).

The fixture pins every decoding mode's tokens (and pass counts) so that faster decoding paths (a static
KV cache, graphs, cheaper passes) are checked against what the weights gave before them, token for token:
early-exit consistency decoding is not the greedy output, so "equal to AR" cannot check it.

    .venv/bin/python -m tests.policies.record_vla_tokens   # only when the shipped weights change
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).with_name("vla_tokens.npz")
PLANS_PER_TASK = 4


def main() -> None:
    from agentrt.bench.vla import MODES, _observations
    from policies.vla.policy import NanoPolicy, PolicyConfig
    from sims.tasks import TASK_NAMES

    images, states, instructions, episode = [], [], [], []
    for t, task in enumerate(TASK_NAMES):
        for image, state, instruction in _observations(task, 1, PLANS_PER_TASK)[0]:
            images.append(image)
            states.append(state)
            instructions.append(instruction)
            episode.append(t)
    arrays: dict[str, np.ndarray] = {
        "images": np.stack(images), "states": np.stack(states), "instructions": np.array(instructions),
        "episode": np.array(episode),
    }
    for m in MODES:
        policy = NanoPolicy(PolicyConfig(decoding=m.decoding, max_iterations=m.max_iterations,
                                         tolerance_bins=m.tolerance_bins))
        tokens, passes = [], []
        for i in range(len(images)):
            if i == 0 or episode[i] != episode[i - 1]:
                policy.reset()
            chunk, info = policy.act(images[i], states[i], instructions[i])
            assert policy._previous is not None
            tokens.append(policy._previous)
            passes.append(info.iterations)
        arrays[f"tokens_{m.name}"] = np.array(tokens)
        arrays[f"passes_{m.name}"] = np.array(passes)
    np.savez_compressed(FIXTURE, **arrays)
    print(f"wrote {FIXTURE} ({len(images)} observations, modes {', '.join(m.name for m in MODES)})")


if __name__ == "__main__":
    main()
