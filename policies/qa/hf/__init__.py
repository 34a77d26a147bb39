"""Hugging Face VLMs behind the VideoQA contract: SmolVLM / SmolVLM2 (Idefics3) and Qwen2-VL / Qwen2.5-VL.

- ``vlm``: ``load_hf_videoqa(path)`` and ``HFVideoQA`` (slow-fast tokens, the streaming window, answers).
- ``vision``: preprocessing and the two families' vision towers (through the engine's feature cache).
- ``window``: the language model's bounded streaming KV window.

Imported on first use (``policies.lazy``): transformers and torch load only when a model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_EXPORTS = dict.fromkeys(["HFVideoQA", "HFVideoQAConfig", "load_hf_videoqa", "FAMILIES"], "policies.qa.hf.vlm")
__all__ = ["HFVideoQA", "HFVideoQAConfig", "load_hf_videoqa", "FAMILIES"]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from policies.qa.hf.vlm import FAMILIES, HFVideoQA, HFVideoQAConfig, load_hf_videoqa
