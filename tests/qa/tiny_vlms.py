"""Tiny random SmolVLM / Qwen2-VL / Qwen2.5-VL checkpoints, built offline and saved like downloaded ones.

Each ``save_tiny(kind, folder)`` writes config.json, model.safetensors, a
byte-level BPE tokenizer.json holding the model's special tokens, and a
preprocessor_config.json, so tests load them through `load_hf_videoqa`, the
same code a real checkpoint goes through.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>", "<fake_token_around_image>",
           "<global-img>", "<image>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
KINDS = ("smolvlm", "idefics3", "qwen2_vl", "qwen2_5_vl")
_CORPUS = ["what is the robot holding", "the red cube is on the table", "a blue ball rolls to the left",
           "nothing changed in the last ten seconds", "the arm moved up", "yes no one two three"] * 20


def _tokenizer(folder: Path, extra: tuple[str, ...] = ()) -> dict[str, int]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = SPECIAL + list(extra)
    trainer = trainers.BpeTrainer(vocab_size=300 + len(extra), special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS, trainer)
    tok.save(str(folder / "tokenizer.json"))
    ids = {t: tok.token_to_id(t) for t in specials}
    ids["vocab"] = tok.get_vocab_size()
    return ids


_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=2048)


def save_tiny(kind: str, folder: Path, seed: int = 0, extra_tokens: tuple[str, ...] = ()) -> Path:
    import transformers as tf

    folder.mkdir(parents=True, exist_ok=True)
    ids = _tokenizer(folder, extra_tokens)
    text = dict(_TEXT, vocab_size=ids["vocab"], eos_token_id=ids["<|endoftext|>"])
    torch.manual_seed(seed)
    if kind in ("smolvlm", "idefics3"):
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      image_size=128, patch_size=16)
        config_class = tf.SmolVLMConfig if kind == "smolvlm" else tf.Idefics3Config
        model_class = tf.SmolVLMForConditionalGeneration if kind == "smolvlm" else tf.Idefics3ForConditionalGeneration
        config = config_class(text_config=dict(text, model_type="llama"), vision_config=vision, scale_factor=2,
                              image_token_id=ids["<image>"])
        pre = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255,
               "max_image_size": {"longest_edge": 128}}
    elif kind in ("qwen2_vl", "qwen2_5_vl"):
        rope = {"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]}
        if kind == "qwen2_vl":
            vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                          spatial_merge_size=2, temporal_patch_size=2)
            config_class, model_class = tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration
        else:
            vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                          patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                          fullatt_block_indexes=[1])
            config_class, model_class = tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration
        config = config_class(text_config=dict(text, rope_parameters=rope), vision_config=vision,
                              image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                              vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
        pre = {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
               "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
    else:
        raise ValueError(kind)
    model = model_class(config).eval()
    model.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    return folder
