"""One trainer on a tiny config, alone or as one rank under torchrun (tests/policies/test_distributed_training.py):

    python tests/policies/_distributed_run.py KIND CONFIG_JSON CURVE_JSON
    torchrun --nproc-per-node 2 ... tests/policies/_distributed_run.py KIND CONFIG_JSON CURVE_JSON

KIND: train | distill | train-qa; CONFIG_JSON: the trainer's config fields (train-qa: the model's
sizes under "model"). Rank 0 writes the loss
curve it reported (one value per step: the running loss the progress shows) to CURVE_JSON.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from agentrt.distributed import ranks


def run(kind: str, config: dict[str, Any]) -> list[float]:
    """Train; -> the loss reported at every step (empty on ranks other than 0: they report nothing)."""
    curve: list[float] = []
    if kind == "train":
        from policies.vla.train import TrainConfig, train

        train(TrainConfig(**config), on_step=lambda step, loss: curve.append(loss))
    elif kind == "distill":
        from policies.vla.distill import DistillConfig, distill

        def on_progress(phase: str, done: int, total: int, loss: float) -> None:
            if phase == "distill":
                curve.append(loss)

        distill(DistillConfig(**config), on_progress=on_progress)
    elif kind == "train-qa":
        from policies.qa.train import TrainQAConfig
        from policies.qa.train import train as train_qa

        def report(line: str) -> None:  # with log_every=1: "step 3/10 loss 4.123 ..." every step
            found = re.match(r"step \d+/\d+ loss (\S+)", line)
            if found:
                curve.append(float(found.group(1)))

        from policies.qa.data import vocabulary
        from policies.qa.model import NanoQAConfig

        sizes = config.pop("model", {})
        train_qa(TrainQAConfig(**config), NanoQAConfig(words=vocabulary(), **sizes), resume=False, report=report)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    return curve


if __name__ == "__main__":
    kind, config_json, curve_json = sys.argv[1:4]
    curve = run(kind, json.loads(Path(config_json).read_text()))
    if ranks().main:
        Path(curve_json).write_text(json.dumps(curve))
    elif curve:
        raise SystemExit(f"rank {ranks().rank} reported a loss: only rank 0 may")
