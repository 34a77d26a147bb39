"""Streaming model core: ViT feature cache, token pruning, slow-fast tokens, streaming KV cache, decoding."""
