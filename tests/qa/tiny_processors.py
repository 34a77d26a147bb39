"""Tiny random VLM checkpoints saved WITH their real processor classes, as a downloaded checkpoint is.

``save_with_processor(kind, folder)`` writes the tiny model of `tests.qa.tiny_vlms`
and beside it the architecture's own processor (image processor + a byte-level
BPE tokenizer trained here with ``tokenizers`` + the family's chat template),
so `AutoProcessor.from_pretrained(folder)` loads it back as it would a real one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from policies.qa.hf.reference import without_video
from tests.qa.tiny_vlms import save_tiny

# The published templates' structure (Qwen2-VL's and SmolVLM's), trimmed to what one image or video + one question uses.
QWEN_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
# SmolVLM / Idefics3 name each tile of a split image by a special token
ROW_COL = tuple(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))


def _fast_tokenizer(folder: Path) -> object:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", bos_token="<|im_start|>")


def save_with_processor(kind: str, folder: Path, seed: int = 0) -> Path:
    import importlib.util

    import transformers as tf

    video = importlib.util.find_spec("torchvision") is not None  # transformers' video processors need it

    def cls(name: str) -> Any:
        return getattr(tf, name) if video else without_video(getattr(tf, name))

    smol = kind in ("smolvlm", "idefics3")
    save_tiny(kind, folder, seed, extra_tokens=ROW_COL if smol else ())
    (folder / "preprocessor_config.json").unlink()  # the processor writes its own
    tokenizer = _fast_tokenizer(folder)
    processor: object
    if smol:
        # the vision tower sees 128² tiles: an image is split into tiles of 128 plus a 128² global view
        images = dict(do_image_splitting=True, size={"longest_edge": 256}, max_image_size={"longest_edge": 128},
                      image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
        seq = (128 // 16) ** 2 // 4  # patches per tile / scale_factor²
        if kind == "smolvlm":
            parts = [tf.SmolVLMImageProcessor(**images), tokenizer] + [tf.SmolVLMVideoProcessor() if video else None]
            processor = cls("SmolVLMProcessor")(*parts, image_seq_len=seq, chat_template=SMOLVLM_TEMPLATE)
        else:
            processor = tf.Idefics3Processor(tf.Idefics3ImageProcessor(**images), tokenizer, image_seq_len=seq,
                                             chat_template=SMOLVLM_TEMPLATE)
    else:
        images = dict(min_pixels=56 * 56, max_pixels=224 * 224, patch_size=14, merge_size=2, temporal_patch_size=2)
        name = "Qwen2VLProcessor" if kind == "qwen2_vl" else "Qwen2_5_VLProcessor"
        processor = cls(name)(image_processor=tf.Qwen2VLImageProcessor(**images), tokenizer=tokenizer,
                        chat_template=QWEN_TEMPLATE)
    processor.save_pretrained(str(folder))  # type: ignore[attr-defined]
    if smol:  # save_pretrained leaves image_seq_len out; published checkpoints carry it in processor_config.json
        path = folder / "processor_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "image_seq_len": seq}, indent=2))
    return folder
