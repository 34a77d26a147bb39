"""Video QA: models that watch a stream and answer questions about it, and the node that serves them.

- ``videoqa``: the contract (``VideoQAModel``) and ``load_videoqa(spec)``, torch-free.
- ``domain``: is the stream what the nano model was trained on (frame statistics vs sim scenes).
- ``hub``: ``hf:ORG/NAME`` to a local folder through the Hugging Face cache.
- ``node``: ``VideoQANode``, the VideoLLM node (frames + queries in, streamed answers out).
- ``model`` / ``runtime``: the nano QA model (``NanoQA``) and it on a live stream (``NanoVideoQA``).
- ``hf``: Hugging Face VLMs (SmolVLM, Qwen2-VL) behind the same contract.
- ``data``: templated questions about seeded PyBullet scenes; the dataset on disk.
- ``train`` (+ ``batches``, ``losses``, ``attention``: training only) and ``evaluate``.

Names are imported on first use (``policies.lazy``): ``import policies.qa`` imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["VideoQAModel", "load_videoqa", "split_model_spec", "word_check", "domain_note", "MODEL_SPECS",
                     "NANO_QA_WEIGHTS"], "policies.qa.videoqa"),
    **dict.fromkeys(["VideoQANode", "VideoQANodeConfig", "checked_answer", "load_qa_model"], "policies.qa.node"),
    **dict.fromkeys(["NanoQA", "NanoQAConfig", "QATokenizer", "save_model", "load_model"], "policies.qa.model"),
    **dict.fromkeys(["NanoVideoQA", "load_nano_qa"], "policies.qa.runtime"),
    **dict.fromkeys(["HFVideoQA", "HFVideoQAConfig", "load_hf_videoqa"], "policies.qa.hf.vlm"),
    **dict.fromkeys(["TrainQAConfig"], "policies.qa.train"),
    **dict.fromkeys(["QAEvalResult", "evaluate_qa", "evaluate_qa_sim"], "policies.qa.evaluate"),
}
__all__ = ["VideoQAModel", "load_videoqa", "split_model_spec", "word_check", "domain_note", "MODEL_SPECS", "NANO_QA_WEIGHTS",
           "VideoQANode", "VideoQANodeConfig", "checked_answer", "load_qa_model", "NanoQA", "NanoQAConfig",
           "QATokenizer", "save_model", "load_model", "NanoVideoQA", "load_nano_qa", "HFVideoQA", "HFVideoQAConfig",
           "load_hf_videoqa", "TrainQAConfig", "QAEvalResult", "evaluate_qa", "evaluate_qa_sim"]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from policies.qa.evaluate import QAEvalResult, evaluate_qa, evaluate_qa_sim
    from policies.qa.hf.vlm import HFVideoQA, HFVideoQAConfig, load_hf_videoqa
    from policies.qa.model import NanoQA, NanoQAConfig, QATokenizer, load_model, save_model
    from policies.qa.node import VideoQANode, VideoQANodeConfig, checked_answer, load_qa_model
    from policies.qa.runtime import NanoVideoQA, load_nano_qa
    from policies.qa.train import TrainQAConfig
    from policies.qa.videoqa import (
        MODEL_SPECS,
        NANO_QA_WEIGHTS,
        VideoQAModel,
        domain_note,
        load_videoqa,
        split_model_spec,
        word_check,
    )
