"""The models behind the core: the bundled nano models, Hugging Face adapters, training; shipped weights.

- ``vla/``: the nano VLA (frame + state + instruction -> action chunk), its policy node, data,
  training, distillation and evaluation.
- ``qa/``: video QA: the model contract, the VideoLLM node, the nano QA model, Hugging Face VLMs,
  QA data, training and evaluation.
- ``checkpoint``: the one weights format of both nano models (safetensors + JSON config).
- ``vocabulary``: the words a closed-vocabulary model knows, and which of a text's it does not.
- ``weights/``: the shipped weights (``nano_vla``, ``nano_vla_cd``, ``nano_qa``) with a JSON card each.

Launch files name the nodes ``policies.vla.node:NanoVLANode`` and ``policies.qa.node:VideoQANode``.
Names are imported on first use (``policies.lazy``): ``import policies`` imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["NanoPolicy", "NanoVLANode"], "policies.vla"),
    **dict.fromkeys(["VideoQAModel", "VideoQANode", "load_videoqa"], "policies.qa"),
    **dict.fromkeys(["save_checkpoint", "load_checkpoint"], "policies.checkpoint"),
    **dict.fromkeys(["WordCheck", "check_words"], "policies.vocabulary"),
}
__all__ = ["NanoPolicy", "NanoVLANode", "VideoQAModel", "VideoQANode", "load_videoqa", "save_checkpoint",
           "load_checkpoint", "WordCheck", "check_words"]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from policies.checkpoint import load_checkpoint, save_checkpoint
    from policies.qa import VideoQAModel, VideoQANode, load_videoqa
    from policies.vla import NanoPolicy, NanoVLANode
    from policies.vocabulary import WordCheck, check_words
