"""HFPolicy: a Hugging Face VLA checkpoint behind the nano policy's call, ``act(image, state, instruction) -> chunk``.

Decoding through ``agentrt.engine.hf.HFCausalLMRunner`` (the model's own
forward and DynamicCache), every argmax restricted to the action ids:

| name          | weights                | how                                                           |
|---------------|------------------------|---------------------------------------------------------------|
| `ar`          | AR-trained             | ``greedy_decode``: one pass per token (the reference)          |
| `jacobi`      | AR-trained             | ``jacobi_decode``, exact (== AR), previous chunk as the guess  |
| `consistency` | consistency-distilled  | ``jacobi_decode`` with early exit (cap + tolerance in bins)    |

It runs where ``PolicySource``, ``agentrt eval`` and the policy node run a
``NanoPolicy``: ``load_policy`` picks it for weights named ``hf:FOLDER``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentrt.engine import JacobiConfig, greedy_decode, jacobi_decode, prefill
from agentrt.engine.device import model_device, synchronize
from agentrt.engine.hf import HFCausalLMRunner
from agentrt.errors import ConfigError
from agentrt.pixels import fit
from policies.hfvla.model import HFVLA, load_vla
from policies.vla.model import ActionTokenizer
from policies.vla.policy import ActInfo, InstructionCheck, NanoPolicy, PolicyConfig, shifted_guess
from policies.vocabulary import WordCheck, written_words

__all__ = ["HF_PREFIX", "HFPolicy", "load_policy", "hf_folder"]

HF_PREFIX = "hf:"
REPO = Path(__file__).resolve().parents[2]


def hf_folder(weights: str) -> Path | None:
    """``hf:FOLDER`` -> the folder (a local Hugging Face VLA checkpoint); anything else -> None."""
    if not weights.startswith(HF_PREFIX):
        return None
    folder = Path(weights[len(HF_PREFIX) :]).expanduser()
    if not folder.is_dir() and not folder.is_absolute() and (REPO / folder).is_dir():
        folder = REPO / folder  # a folder named as in the repository (runs/hfvla), from any working directory
    if not folder.is_dir():
        raise ConfigError(f"{weights}: no such folder; hf: takes a local checkpoint folder (this backend never "
                          f"downloads), e.g. hf:runs/hfvla from `agentrt train-hfvla`")
    return folder


def load_policy(config: PolicyConfig) -> Any:
    """The policy for ``config.weights``: ``HFPolicy`` for ``hf:FOLDER``, else the nano VLA's ``NanoPolicy``."""
    folder = hf_folder(config.weights)
    if folder is None:
        return NanoPolicy(config)
    return HFPolicy(config, folder=folder)


class _Words:
    """A subword tokenizer reads every word: nothing is unknown or cut (the nano policy's ``text.check``)."""

    def check(self, text: str) -> WordCheck:
        return WordCheck(tuple(written_words(text)), (), 0)


class HFPolicy:
    """Loads a checkpoint folder once; ``act`` is one inference; ``reset()`` between episodes.

    ``model`` given in memory (an ``HFVLA`` being trained or a test's) runs where it is.
    """

    wants_wrist = False  # as ``NanoPolicy.wants_wrist``: these VLAs read the scene camera alone

    def __init__(self, config: PolicyConfig | None = None, model: HFVLA | None = None, *,
                 folder: str | Path | None = None) -> None:
        self.config = cfg = config or PolicyConfig()
        torch.set_num_threads(cfg.threads)
        if model is None:
            if folder is None:
                raise ConfigError("HFPolicy: give a checkpoint folder (weights hf:FOLDER) or a model")
            placement = cfg.placement
            model = load_vla(folder, placement.device, placement.dtype)
        self.model = model.eval()
        self.robot = model.config.robot
        self.actions = ActionTokenizer(model.config)
        self.text = _Words()
        self.runner = HFCausalLMRunner(model.vlm)
        self.jacobi = JacobiConfig()
        if cfg.decoding == "consistency":
            self.jacobi = JacobiConfig(max_iterations=cfg.max_iterations, tolerance_bins=cfg.tolerance_bins)
        self._previous: list[int] | None = None
        self.ground: np.ndarray | None = None  # where the last block said the named object is (grounding tokens)

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    @property
    def object_words(self) -> frozenset[str]:
        from sims.tasks.base import COLOURS, SHAPES

        return frozenset({*COLOURS, *SHAPES})

    def check_instruction(self, instruction: str) -> InstructionCheck:
        words = self.text.check(instruction)
        return InstructionCheck(words, any(w in self.object_words for w in words.words))

    def reset(self) -> None:
        self._previous = None

    def prompt(self, image: np.ndarray, state: np.ndarray, instruction: str) -> torch.Tensor:
        """The prompt's input embeddings [1, P, C]: the words and state as tokens, the image's rows in place."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ConfigError(f"HFPolicy: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        device = self.device
        pixels = self.model.pixels(fit(image, self.model.config.image_size, self.config.fit), device)
        ids = torch.tensor([self.model.prompt_ids(instruction, state)], device=device)
        return self.model.embed(ids, pixels)

    @torch.inference_mode()
    def act(self, image: np.ndarray, state: np.ndarray, instruction: str) -> tuple[np.ndarray, ActInfo]:
        """image (H, W, 3) RGB uint8, state (4,) -> chunk (K, D) float32 and timings."""
        info = ActInfo()
        device = self.device
        spec = self.model.config
        synchronize(device)
        t0 = time.perf_counter()
        prompt = self.prompt(image, state, instruction)
        synchronize(device)
        t1 = time.perf_counter()
        cache, last = prefill(self.runner, prompt)
        synchronize(device)
        t2 = time.perf_counter()
        n, g = spec.block_tokens, spec.ground_dims
        if self.config.decoding == "ar":
            result = greedy_decode(self.runner, None, n, action_ids=spec.action_ids, cache=cache, last_logits=last)
        else:
            init = self._shifted_guess()[1:] if self._previous is not None else None
            result = jacobi_decode(self.runner, None, n, self.jacobi, action_ids=spec.action_ids, init=init,
                                   cache=cache, last_logits=last)
        synchronize(device)
        t3 = time.perf_counter()
        self._previous = result.tokens
        # the grounding tokens are part of the decoded block (the actions were conditioned on them); not the chunk
        self.ground = spec.ground_values(result.tokens) if g else None
        info.vit_ms, info.prefill_ms, info.decode_ms = (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3
        info.total_ms = (t3 - t0) * 1e3
        info.iterations, info.early_exit = result.stats.iterations, result.stats.early_exit
        return self.actions.decode(result.tokens[g:]), info

    def _shifted_guess(self) -> list[int]:
        """The previous block as the next one's guess: its grounding tokens as they were (the object has not
        moved), its chunk moved on by ``guess_shift_steps`` steps as ``NanoPolicy`` moves it."""
        assert self._previous is not None
        g = self.model.config.ground_dims
        return self._previous[:g] + shifted_guess(self._previous[g:], self.model.config.action_dims,
                                                  self.config.guess_shift_steps)
