"""The nano VLA: a small ViT and a causal decoder that turn a camera frame, the robot's state and an
instruction into an action chunk; its policy, its node, its data, training and evaluation.

- ``model``: ``NanoVLA`` and its config, tokenizers, ``save_model`` / ``load_model`` (``policies.checkpoint``).
- ``policy``: ``NanoPolicy`` (``act(image, state, instruction) -> chunk``; ar / jacobi / consistency
  decoding) and ``PolicySource`` (the policy in-process, for ``agentrt eval`` and ``demo``).
- ``node``: ``NanoVLANode``, the policy as a runtime node (frames + state in, ActionChunks out).
- ``data``: scripted-expert demonstrations in a LeRobot-shaped folder.
- ``train``, ``distill``: behaviour cloning; consistency distillation (CEED-VLA) for few-pass decoding.
- ``evaluate``: closed-loop success in the PyBullet tasks, held-out seeds, reworded instructions.

Names are imported on first use (``policies.lazy``), so ``import policies.vla`` imports no torch, and
the policy node and policy never import the simulator (they drive real robots too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["NanoVLA", "NanoVLAConfig", "save_model", "load_model", "trained_robot", "robot_state"],
                    "policies.vla.model"),
    **dict.fromkeys(["NanoPolicy", "PolicyConfig", "PolicySource", "DECODINGS", "default_weights"], "policies.vla.policy"),
    **dict.fromkeys(["NanoVLANode", "NanoVLANodeConfig"], "policies.vla.node"),
    **dict.fromkeys(["CollectConfig", "collect", "load_episodes"], "policies.vla.data"),
    **dict.fromkeys(["TrainConfig"], "policies.vla.train"),
    **dict.fromkeys(["DistillConfig"], "policies.vla.distill"),
    **dict.fromkeys(["EvalRow", "evaluate_policy", "quick_eval"], "policies.vla.evaluate"),
}
__all__ = ["NanoVLA", "NanoVLAConfig", "save_model", "load_model", "trained_robot", "robot_state", "NanoPolicy",
           "PolicyConfig", "PolicySource", "DECODINGS", "default_weights", "NanoVLANode", "NanoVLANodeConfig",
           "CollectConfig", "collect", "load_episodes", "TrainConfig", "DistillConfig", "EvalRow", "evaluate_policy",
           "quick_eval"]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from policies.vla.data import CollectConfig, collect, load_episodes
    from policies.vla.distill import DistillConfig
    from policies.vla.evaluate import EvalRow, evaluate_policy, quick_eval
    from policies.vla.model import NanoVLA, NanoVLAConfig, load_model, robot_state, save_model, trained_robot
    from policies.vla.node import NanoVLANode, NanoVLANodeConfig
    from policies.vla.policy import DECODINGS, NanoPolicy, PolicyConfig, PolicySource, default_weights
    from policies.vla.train import TrainConfig
