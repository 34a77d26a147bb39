"""A KV cache of fixed maximum length, allocated once: what a captured (CUDA graph) pass needs.

One buffer [layers, 2, B, H, max_length, D] holds every layer's keys and
values; ``length`` counts the valid rows. Appending writes into the buffer
(never reallocating, so addresses stay fixed for a graph), and cropping only
moves the count back: Jacobi's rollback is free, and the stale rows behind it
are overwritten by the next pass. Everything else (keys, values, drop,
map_keys) is ``KVCache``'s, over views of the one buffer.

Two ways to write a forward's rows:

- ``append`` (the eager path, any shape): rows ``length .. length + T`` by
  slice, attending over exactly the valid rows, as ``KVCache`` does;
- ``write`` (a static-shape pass): rows given as a device tensor, attending
  over the whole buffer under a mask (``row_mask``), so the pass has the same
  shapes and addresses whatever the cache holds; its caller sets ``length``.
"""

from __future__ import annotations

import torch

from agentrt.engine.kv_cache import KVCache
from agentrt.errors import ModelError

__all__ = ["StaticKVCache"]


class StaticKVCache(KVCache):
    """Per layer: keys and values [B, H, max_length, D], preallocated; ``length`` rows are valid."""

    def __init__(self, num_layers: int, *, heads: int, head_dim: int, max_length: int, batch: int = 1,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        super().__init__(num_layers)
        if max_length < 1 or heads < 1 or head_dim < 1 or batch < 1:
            raise ModelError(f"StaticKVCache: expected positive sizes, got heads={heads}, head_dim={head_dim}, "
                             f"max_length={max_length}, batch={batch}")
        self.max_length = max_length
        self.buffer = torch.zeros(num_layers, 2, batch, heads, max_length, head_dim, device=device, dtype=dtype)
        for layer in range(num_layers):
            self._k[layer], self._v[layer] = self.buffer[layer, 0], self.buffer[layer, 1]

    @property
    def device(self) -> torch.device:
        return self.buffer.device

    def _grow(self, layer: int, rows: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise ModelError(f"StaticKVCache: {rows} rows do not fit max_length={self.max_length}; "
                         "give the runner a larger max_length")

    def set_length(self, length: int) -> None:
        """Every layer now holds ``length`` valid rows (after a static-shape pass, whose rows the host did not count)."""
        if not 0 <= length <= self.max_length:
            raise ModelError(f"StaticKVCache.set_length: expected 0 <= length <= {self.max_length}, got {length}")
        self._len = [length] * self.num_layers

    def write(self, layer: int, rows: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Put k, v [B, H, T, D] at buffer rows ``rows`` [T] (a device tensor); -> the layer's whole buffers."""
        kb, vb = self.buffer[layer, 0], self.buffer[layer, 1]
        kb.index_copy_(2, rows, k)
        vb.index_copy_(2, rows, v)
        return kb, vb

    def row_mask(self, rows: torch.Tensor) -> torch.Tensor:
        """[T, max_length] bool: the query at buffer row r sees rows 0..r (causal over the whole buffer)."""
        return torch.arange(self.max_length, device=rows.device)[None, :] <= rows[:, None]
