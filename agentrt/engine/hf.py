"""Hugging Face adapters: SigLIP / CLIP vision towers for the feature cache, causal LMs for decoding.

Only the structure is borrowed, never weights from a hub: the adapters read the
modules a loaded model already has. transformers is imported lazily, inside
the functions that need it.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from agentrt.engine.device import model_device
from agentrt.engine.vit_cache import VisionTower
from agentrt.errors import MissingDependencyError, ModelError

__all__ = ["hf_vision_tower", "HFCausalLMRunner"]


def hf_vision_tower(model: nn.Module) -> VisionTower:
    """A SiglipVisionModel / CLIPVisionModel (or its inner vision transformer) as a VisionTower.

    Reproduces the model's ``last_hidden_state``: SigLIP applies its
    post-LayerNorm to every token; CLIP applies a pre-LayerNorm after the
    embeddings and leaves the tokens un-normalised (its post-LayerNorm is for
    the pooled class token only).
    """
    inner = getattr(model, "vision_model", model)
    embeddings = getattr(inner, "embeddings", None)
    encoder = getattr(inner, "encoder", None)
    layers = getattr(encoder, "layers", None)
    if embeddings is None or layers is None:
        raise ModelError(
            f"hf_vision_tower: expected a SigLIP or CLIP vision model (embeddings + encoder.layers), "
            f"got {type(model).__name__}"
        )
    for layer in layers:
        attn = getattr(layer, "self_attn", None)
        if attn is None or not all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "out_proj")):
            raise ModelError(
                f"hf_vision_tower: layer {type(layer).__name__} is not a pre-LN CLIP/SigLIP layer"
            )
    family = type(inner).__name__.lower()
    pre_norm = getattr(inner, "pre_layrnorm", None)  # CLIP's spelling
    post_norm = getattr(inner, "post_layernorm", None)

    def embed(pixels: torch.Tensor) -> torch.Tensor:
        x = embeddings(pixels)
        return pre_norm(x) if pre_norm is not None else x

    if "clip" in family or pre_norm is not None:
        finish = _identity
    elif post_norm is not None:
        finish = post_norm
    else:
        finish = _identity
    return VisionTower(embed=embed, layers=list(layers), finish=finish)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class HFCausalLMRunner:
    """A transformers causal LM (Llama family) with its DynamicCache, for ``greedy_decode`` / ``jacobi_decode``.

    Positions are passed explicitly (``position_ids``), and rollback uses
    ``crop`` with a negative count, the form transformers 5 accepts for
    dropping rows (REFERENCES §8). With ``max_length`` the cache is a
    transformers ``StaticCache`` of that many rows, allocated once (what
    ``torch.compile`` and graphs need); its crop only moves the length back,
    and it cannot ``evict`` (streaming needs the dynamic cache). The device is
    read from the model at every call (runners follow their model).
    """

    def __init__(self, model: nn.Module, *, max_length: int | None = None) -> None:
        if max_length is not None and max_length < 1:
            raise ModelError(f"HFCausalLMRunner: expected max_length >= 1 (or None), got {max_length}")
        self.model: Any = (
            model  # a transformers PreTrainedModel (typed loosely: transformers is optional here)
        )
        self.max_length = max_length
        # transformers 5.24 renamed `past_key_values` to `cache` (the old name warns); accept both
        parameters = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in parameters else "past_key_values"

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def new_cache(self) -> Any:
        try:
            from transformers import DynamicCache, StaticCache
        except ImportError as exc:  # pragma: no cover - transformers is a core dependency
            raise MissingDependencyError("transformers", "Hugging Face decoding") from exc
        if self.max_length is not None:
            return StaticCache(config=self.model.config, max_cache_len=self.max_length)
        return DynamicCache(config=self.model.config)

    def forward(self, inputs: torch.Tensor, positions: torch.Tensor, cache: Any) -> torch.Tensor:
        key = "inputs_embeds" if inputs.is_floating_point() else "input_ids"
        out = self.model(
            **{key: inputs}, position_ids=positions[None], use_cache=True, **{self._cache_kwarg: cache}
        )
        return out.logits

    def cache_length(self, cache: Any) -> int:
        return int(cache.get_seq_length())

    def crop(self, cache: Any, length: int) -> None:
        drop = int(cache.get_seq_length()) - length
        if drop < 0:
            raise ModelError(
                f"HFCausalLMRunner.crop: the cache holds {cache.get_seq_length()} rows, asked {length}"
            )
        if drop:
            cache.crop(-drop)

    def evict(self, cache: Any, start: int, stop: int, shift: int | None = None) -> None:
        """Drop rows [start, stop) of a DynamicCache; rotate later keys back by ``shift`` positions
        (default stop - start) so positions stay contiguous.

        Keys in the cache carry the model's rotary embedding; rotations
        compose, so rotating by -shift renumbers them exactly. Only plain
        rotary embeddings (no attention scaling) compose this way. Qwen2-VL's
        M-RoPE too: every kept row's (t, h, w) position moves by the same
        shift, and rotary frequency j turns by shift x inv_freq[j] whichever of
        t, h or w it reads, so one rotation renumbers all three.
        """
        from agentrt.engine.decoder import rotate_with

        rotary = getattr(getattr(self.model, "model", self.model), "rotary_emb", None)
        if rotary is None or getattr(rotary, "attention_scaling", 1.0) != 1.0:
            raise ModelError(
                f"HFCausalLMRunner.evict: needs a model with plain rotary embeddings (model.rotary_emb, "
                f"attention_scaling 1.0); {type(self.model).__name__} has none or a scaled one"
            )
        layers = getattr(cache, "layers", None)
        if self.max_length is not None:
            raise ModelError("HFCausalLMRunner.evict: a static cache (max_length) keeps its rows in place; "
                             "stream with max_length=None")
        if layers is None:
            raise ModelError(
                f"HFCausalLMRunner.evict: expected a DynamicCache with .layers, got {type(cache).__name__}"
            )
        turn = float(stop - start if shift is None else shift)
        for layer in layers:
            keys, values = layer.keys, layer.values  # [B, H, L, D]
            tail = keys[..., stop:, :]
            tail = rotate_with(tail, torch.full((tail.shape[-2],), -turn), rotary.inv_freq)
            layer.keys = torch.cat([keys[..., :start, :], tail], dim=-2)
            layer.values = torch.cat([values[..., :start, :], values[..., stop:, :]], dim=-2)
