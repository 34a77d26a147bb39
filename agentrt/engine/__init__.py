"""Streaming model core: ViT feature cache, token pruning, slow-fast tokens, streaming KV cache, decoding.

Model-agnostic inference techniques, each with its plain reference beside it:

- ``ViT`` (plain forward) and ``ViTFeatureCache`` (STC-Cacher: per-layer reuse
  across frames), also over Hugging Face SigLIP / CLIP towers;
- ``TokenPruner`` (STC-Pruner: the k most novel tokens per frame);
- ``build_slowfast`` (fast pooled tokens over many frames, slow full-resolution
  tokens for a few, chosen from a token budget);
- ``Decoder`` and ``KVCache`` (a small causal LM), ``StaticKVCache`` (fixed
  maximum length, allocated once; the passes over it replayed as CUDA graphs on
  a GPU), ``StreamingKVCache`` (sinks + bounded window, question reuses the
  cached prefix);
- ``greedy_decode`` and ``jacobi_decode`` (exact parallel decoding, early exit),
  for our decoder and Hugging Face causal LMs (``HFCausalLMRunner``);
- ``batched_prefill``, ``batched_greedy``, ``batched_jacobi``: many sequences in shared
  passes, each row equal to its single-row decode (a policy server's batches).

See docs/engine.md.
"""

from agentrt.engine.batched import batched_greedy, batched_jacobi, batched_prefill
from agentrt.engine.decoder import Decoder, DecoderConfig, rope_rotate
from agentrt.engine.decoding import (
    DecodeResult,
    DecoderRunner,
    DecodeStats,
    JacobiConfig,
    NativeRunner,
    greedy_decode,
    jacobi_decode,
    prefill,
)
from agentrt.engine.graphs import GRAPH_MODES
from agentrt.engine.hf import HFCausalLMRunner, hf_vision_tower
from agentrt.engine.kv_cache import KVCache
from agentrt.engine.pruning import PrunedTokens, TokenPruner, TokenPrunerConfig
from agentrt.engine.slowfast import (
    SlowFastConfig,
    SlowFastPlan,
    SlowFastTokens,
    build_slowfast,
    plan_slowfast,
)
from agentrt.engine.static_cache import StaticKVCache
from agentrt.engine.streaming import StreamingConfig, StreamingKVCache
from agentrt.engine.vit import ViT, ViTConfig
from agentrt.engine.vit_cache import (
    VisionTower,
    ViTCacheConfig,
    ViTCacheStats,
    ViTFeatureCache,
    as_vision_tower,
)

__all__ = [
    "ViT",
    "ViTConfig",
    "VisionTower",
    "ViTCacheConfig",
    "ViTCacheStats",
    "ViTFeatureCache",
    "as_vision_tower",
    "hf_vision_tower",
    "TokenPruner",
    "TokenPrunerConfig",
    "PrunedTokens",
    "SlowFastConfig",
    "SlowFastPlan",
    "SlowFastTokens",
    "plan_slowfast",
    "build_slowfast",
    "Decoder",
    "DecoderConfig",
    "rope_rotate",
    "KVCache",
    "StaticKVCache",
    "GRAPH_MODES",
    "StreamingConfig",
    "StreamingKVCache",
    "DecoderRunner",
    "NativeRunner",
    "HFCausalLMRunner",
    "DecodeStats",
    "DecodeResult",
    "JacobiConfig",
    "prefill",
    "greedy_decode",
    "jacobi_decode",
    "batched_prefill",
    "batched_greedy",
    "batched_jacobi",
]
