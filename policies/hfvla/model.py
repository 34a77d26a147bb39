"""A SmolVLM / Idefics3 checkpoint (SigLIP tower + Llama LM) that acts: prompt in, action-token logits out.

``HFVLA`` wraps the loaded transformers model with its tokenizer and action
spec (``policies.hfvla.spec``). The prompt's ``<image>`` rows are the image's
connector features, put where the tokens are, as transformers' own
``masked_scatter`` does; everything else is the checkpoint's own modules, so
``agentrt.engine.hf.HFCausalLMRunner`` decodes it with the model's forward.

``load_vla(folder)`` refuses, in one line, a folder without ``vla_actions.json``,
an architecture it does not drive, and a vocabulary the action ids do not fit
(the LM head's rows are not the spec's, the tokenizer runs into the action
range, or a prompt token is an action id).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agentrt.errors import ConfigError, MissingDependencyError
from policies.hfvla.spec import PROMPT_TOKENS, ActionSpec, load_spec, prompt_text

__all__ = ["HFVLA", "load_vla", "ARCHITECTURES"]

log = logging.getLogger(__name__)

# config.json model_type -> transformers class: the SigLIP + Llama family whose image rows are plain tokens
ARCHITECTURES = {"smolvlm": "SmolVLMForConditionalGeneration", "idefics3": "Idefics3ForConditionalGeneration"}


class HFVLA(nn.Module):
    """A SmolVLM-architecture VLM with action tokens. ``config`` is its ``ActionSpec`` (image size, chunk
    shape, action ids): what the policy and the node read, as they read a ``NanoVLAConfig``."""

    def __init__(self, vlm: Any, tokenizer: Any, spec: ActionSpec, image_mean: float = 0.5,
                 image_std: float = 0.5) -> None:
        super().__init__()
        self.vlm = vlm
        self.tokenizer = tokenizer
        self.config = spec
        self.image_mean, self.image_std = image_mean, image_std
        self.image_token_id = int(vlm.config.image_token_id)

    @property
    def lm_head_weight(self) -> torch.Tensor:
        return self.vlm.lm_head.weight

    def pixels(self, images: np.ndarray | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
        """uint8 (B, S, S, 3) or (S, S, 3) -> [B, 3, S, S] normalised as the checkpoint's image processor does
        (rescale 1/255, then mean / std), in the model's dtype."""
        x = torch.as_tensor(images, device=device)
        if x.dim() == 3:
            x = x[None]
        x = x.permute(0, 3, 1, 2).float().div_(255.0).sub_(self.image_mean).div_(self.image_std)
        return x.to(self.lm_head_weight.dtype)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] -> the connector's rows [B, image_seq_len, C], what replaces the ``<image>`` tokens."""
        inner = self.vlm.model
        hidden = inner.vision_model(pixel_values=pixels).last_hidden_state
        return inner.connector(hidden)

    def prompt_ids(self, instruction: str, state: np.ndarray | None) -> list[int]:
        ids = self.tokenizer(prompt_text(instruction, state, self.config.image_seq_len), add_special_tokens=False)
        return list(ids["input_ids"])

    def embed(self, ids: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """Token ids [B, L] (each row with image_seq_len ``<image>`` tokens) and pixels [B, 3, S, S] ->
        input embeddings [B, L, C]."""
        embeds = self.vlm.get_input_embeddings()(ids)
        features = self.image_features(pixels).to(embeds.dtype)
        mask = (ids == self.image_token_id).unsqueeze(-1).expand_as(embeds)
        return embeds.masked_scatter(mask, features)

    def hidden(self, embeds: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The LM's last hidden states [B, L, C] (after its final norm) for a left-padded batch."""
        if attention_mask is None:
            positions = torch.arange(embeds.shape[1], device=embeds.device)[None].expand(embeds.shape[0], -1)
        else:
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.vlm.model.text_model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions)
        return out.last_hidden_state

    def action_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states [..., C] -> logits over the action ids only [..., n_bins] (the rows of the LM head
        the argmax is restricted to; computing the other 49 k rows would cost most of a training step)."""
        lo, hi = self.config.action_ids
        return hidden @ self.lm_head_weight[lo:hi].T

    def teacher_forced(self, prompts: torch.Tensor, mask: torch.Tensor, pixels: torch.Tensor,
                       actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompts [B, P] (mask [B, P]), pixels, action ids [B, N] (a guess or the labels) ->
        (action logits [B, N, n_bins], row i predicting token i from the prompt and actions[:, :i];
        the hidden states of the whole sequence [B, P + N - 1, C])."""
        ids = torch.cat([prompts, actions[:, :-1]], dim=1)
        full_mask = torch.cat([mask, torch.ones_like(actions[:, :-1])], dim=1)
        hidden = self.hidden(self.embed(ids, pixels), full_mask)
        return self.action_logits(hidden[:, prompts.shape[1] - 1 :]), hidden


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependencyError("transformers", "Hugging Face VLAs") from exc
    return transformers


def load_vla(folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> HFVLA:
    """A local checkpoint folder (config.json, weights, tokenizer, ``vla_actions.json``) -> ``HFVLA`` in eval mode."""
    root = Path(folder)
    if not (root / "config.json").exists():
        raise ConfigError(f"{folder}: no config.json; expected a folder written by save_pretrained "
                          f"(e.g. runs/hfvla from `agentrt train-hfvla`)")
    spec = load_spec(root)
    model_type = json.loads((root / "config.json").read_text()).get("model_type", "")
    if model_type not in ARCHITECTURES:
        raise ConfigError(f"{folder}: model_type {model_type!r} is not one this backend drives "
                          f"({', '.join(ARCHITECTURES)}: a SigLIP tower + Llama LM)")
    tf = _transformers()
    tokenizer = tf.AutoTokenizer.from_pretrained(str(root))
    vlm = getattr(tf, ARCHITECTURES[model_type]).from_pretrained(str(root), dtype=dtype)
    check_vocabulary(vlm, tokenizer, spec, str(folder))
    mean, std = _image_norm(root)
    return HFVLA(vlm, tokenizer, spec, mean, std).to(device).eval()


def check_vocabulary(vlm: Any, tokenizer: Any, spec: ActionSpec, name: str) -> None:
    """The action ids fit: the LM head has the spec's rows, and no token the tokenizer writes in a prompt
    is an action id. One line for the first thing that does not fit."""
    rows = int(vlm.lm_head.weight.shape[0])
    lo = spec.action_start
    if rows != spec.vocab_size:
        raise ConfigError(f"{name}: the LM head has {rows} rows but {spec.__class__.__name__} says vocab_size "
                          f"{spec.vocab_size}: the action ids [{lo}, {spec.vocab_size}) do not fit this vocabulary")
    if len(tokenizer) > spec.vocab_size:
        raise ConfigError(f"{name}: the tokenizer has {len(tokenizer)} tokens, more than the LM head's {rows} rows: "
                          f"the vocabulary does not fit")
    specials = [tokenizer.convert_tokens_to_ids(t) for t in PROMPT_TOKENS]
    unknown = [t for t, i in zip(PROMPT_TOKENS, specials, strict=True) if i is None or i == tokenizer.unk_token_id]
    if unknown:
        raise ConfigError(f"{name}: the tokenizer lacks {', '.join(unknown)}, which a SmolVLM prompt needs")
    # a prompt as the policy writes it (words, digits, markers) must stay below the action ids
    sample = tokenizer(prompt_text("touch the red cube", np.array([0.5, -0.1, 0.2, 1.0]), 1),
                       add_special_tokens=False)["input_ids"]
    clash = sorted({int(i) for i in sample if i >= lo})
    if clash:
        raise ConfigError(f"{name}: prompt tokens {clash[:5]} fall inside the action ids [{lo}, {spec.vocab_size}): "
                          f"the vocabulary does not fit 256 action bins at its top")
    if int(vlm.model.image_seq_len) != spec.image_seq_len:
        raise ConfigError(f"{name}: the model makes {vlm.model.image_seq_len} image tokens per image, its "
                          f"vla_actions.json says {spec.image_seq_len}")


def _image_norm(root: Path) -> tuple[float, float]:
    """mean / std from the folder's preprocessor_config.json (one value per channel, all equal), else SigLIP's."""
    path = root / "preprocessor_config.json"
    if not path.exists():
        return 0.5, 0.5
    cfg = json.loads(path.read_text())
    mean, std = cfg.get("image_mean", [0.5] * 3), cfg.get("image_std", [0.5] * 3)
    if len(set(mean)) != 1 or len(set(std)) != 1:
        raise ConfigError(f"{path}: per-channel image_mean/std differ ({mean}, {std}); this backend takes one value")
    return float(mean[0]), float(std[0])
