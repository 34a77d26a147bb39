"""The contract of a model that watches a stream and answers questions about it.

The VideoLLM node (`agentrt serve`, `agentrt ask`, launch/camera_qa.yaml) only
talks to this protocol, so the bundled nano QA model and Hugging Face VLMs
(SmolVLM, Qwen2-VL) are interchangeable behind it.

- ``ingest(image, t_ns)`` adds one RGB frame (H, W, 3) uint8 to the model's
  memory (feature cache, slow-fast tokens, a bounded streaming KV window);
  memory stays bounded however long the stream runs.
- ``answer(question)`` streams the answer as text pieces (deltas) about the
  stream so far; asking leaves the memory as it was.
- ``memory()`` says what is held: {"frames", "tokens", "bytes"}.
- Optional, for a model with a closed vocabulary (the nano one):
  ``check_words(question)`` -> ``policies.vocabulary.WordCheck``, the words it
  does not know (read as ``<unk>``) or never reads. ``word_check(model, text)``
  asks it, None for an open-vocabulary model (a Hugging Face tokenizer reads
  any text).
- Optional, for a model that knows only one kind of scene (the nano one: rendered sims):
  ``domain_note()`` -> the warning line while the stream looks nothing like that, else "".
  ``domain_note(model)`` asks it, "" for a model without the check.

``load_videoqa(spec)`` is the one table from a model name to code:
``nano`` (the shipped weights), ``nano:PATH``, ``hf:PATH`` (a local Hugging
Face checkpoint folder) or ``hf:ORG/NAME`` (a hub name, from the cache or downloaded:
``policies.qa.hub``). Backends are imported lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from agentrt.errors import ConfigError
from policies.vocabulary import WordCheck

__all__ = ["VideoQAModel", "load_videoqa", "word_check", "domain_note", "BACKENDS", "MODEL_SPECS", "split_model_spec",
           "NANO_QA_FILE", "NANO_QA_WEIGHTS"]


@runtime_checkable
class VideoQAModel(Protocol):
    name: str

    def reset(self) -> None:
        """Forget the stream."""

    def ingest(self, image: np.ndarray, t_ns: int) -> None:
        """Add one RGB frame (H, W, 3) uint8 captured at ``t_ns`` (CLOCK_MONOTONIC)."""

    def answer(self, question: str, *, max_new_tokens: int = 32) -> Iterator[str]:
        """Stream the answer to ``question`` about the stream so far, as text deltas."""

    def memory(self) -> dict[str, int]:
        """{"frames": seen, "tokens": held in the KV window, "bytes": held by caches}."""


# prefix -> (module, loader function taking (path_or_empty, device, dtype)).
BACKENDS: dict[str, tuple[str, str]] = {
    "nano": ("policies.qa.runtime", "load_nano_qa"),
    "hf": ("policies.qa.hf.vlm", "load_hf_videoqa"),
}
MODEL_SPECS = "nano, nano:PATH, hf:PATH or hf:ORG/NAME"  # what --model and VideoQANodeConfig.model take
# The file `agentrt train-qa` writes and the package ships; here, not in the model modules, so torch-free
# callers (the CLI, the node's cheap checks) find it without importing torch.
NANO_QA_FILE = "nano_qa.safetensors"
NANO_QA_WEIGHTS = Path(__file__).parents[1] / "weights" / NANO_QA_FILE  # policies/weights/


def split_model_spec(spec: str) -> tuple[str, str]:
    """``nano:PATH`` -> ("nano", "PATH"); ConfigError for a backend not in `BACKENDS`."""
    prefix, _, path = spec.partition(":")
    if prefix not in BACKENDS:
        raise ConfigError(f"unknown QA model {spec!r}: expected {MODEL_SPECS}")
    return prefix, path


def load_videoqa(spec: str, device: str = "auto", dtype: str = "float32") -> VideoQAModel:
    """``nano`` | ``nano:PATH`` | ``hf:PATH`` | ``hf:ORG/NAME`` -> a loaded model, on ``device`` (auto: a GPU when there is one)
    in ``dtype`` (float32 | bfloat16)."""
    prefix, path = split_model_spec(spec)
    if prefix == "hf" and not path:
        raise ConfigError("hf:PATH needs the folder of a local Hugging Face checkpoint, e.g. hf:models/SmolVLM-256M")
    if prefix == "hf":
        from policies.qa.hub import resolve_hf_path

        path = str(resolve_hf_path(path))  # a hub name -> its cached snapshot; a local folder as it is
    module_name, loader = BACKENDS[prefix]
    module = importlib.import_module(module_name)
    model: VideoQAModel = getattr(module, loader)(path, device, dtype)
    return model


def word_check(model: VideoQAModel, text: str) -> WordCheck | None:
    """What ``model`` makes of the words of ``text`` (its optional ``check_words``); None: it reads any text."""
    check = getattr(model, "check_words", None)
    if not callable(check):
        return None
    result: WordCheck = check(text)
    return result


def domain_note(model: VideoQAModel) -> str:
    """The warning line of a model whose stream is out of its domain (its optional ``domain_note``), else ""."""
    note = getattr(model, "domain_note", None)
    return str(note()) if callable(note) else ""
