"""Small random models for the engine tests (built offline from configs, never downloaded)."""

from __future__ import annotations

import torch
from torch import nn

from agentrt.engine import Decoder, DecoderConfig, ViT, ViTConfig


def tiny_vit(seed: int = 0, *, class_token: bool = False) -> ViT:
    torch.manual_seed(seed)
    config = ViTConfig(image_size=32, patch_size=8, width=32, depth=2, heads=2, class_token=class_token)
    return ViT(config).eval()


def random_decoder(seed: int = 0, *, vocab: int = 48, width: int = 32, depth: int = 2, std: float = 0.4) -> Decoder:
    """A decoder whose greedy output varies from token to token.

    The nanoGPT init (std 0.02) makes a random model repeat one token, which
    would let Jacobi decoding converge in one pass and test nothing; larger
    weights give chaotic, prefix-dependent argmaxes.
    """
    torch.manual_seed(seed)
    model = Decoder(DecoderConfig(vocab_size=vocab, width=width, depth=depth, heads=2))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=std)
            elif "weight" in name:
                p.uniform_(0.5, 1.5)
    return model.eval()


def tiny_llama(seed: int = 0, vocab: int = 96) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=None,  # no end token: generate() must not stop or suppress one
    )
    return LlamaForCausalLM(config).eval()


def moving_square(frames: int, size: int, *, seed: int = 0, step: int = 2, square: int = 6) -> torch.Tensor:
    """[F, 3, S, S]: a fixed random background with one bright square moving right."""
    g = torch.Generator().manual_seed(seed)
    background = torch.rand(3, size, size, generator=g)
    video = background.expand(frames, -1, -1, -1).clone()
    for f in range(frames):
        x0 = (f * step) % (size - square)
        video[f, :, size // 3 : size // 3 + square, x0 : x0 + square] = 1.5
    return video
