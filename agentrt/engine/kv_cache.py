"""A key/value cache for our decoder: append rows, crop to a length, drop a span.

Rows live in per-layer buffers that grow by doubling, so appending one token
does not copy the whole cache (``torch.cat`` per step would). Keys are stored
after the rotary embedding, at the positions they were computed for; a span
drop (the streaming window) re-rotates the rows behind it so positions stay
contiguous (``streaming.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from agentrt.errors import ModelError

__all__ = ["KVCache"]


class KVCache:
    """Per layer: keys and values [B, H, L, D]; ``length`` rows are valid."""

    def __init__(self, num_layers: int) -> None:
        if num_layers < 1:
            raise ModelError(f"KVCache: expected num_layers >= 1, got {num_layers}")
        self.num_layers = num_layers
        self._k: list[torch.Tensor | None] = [None] * num_layers
        self._v: list[torch.Tensor | None] = [None] * num_layers
        self._len = [0] * num_layers

    @property
    def length(self) -> int:
        """Rows held (the same in every layer between forwards)."""
        return self._len[0]

    def __len__(self) -> int:
        return self.length

    def layer_length(self, layer: int) -> int:
        """Rows held by one layer (ahead of the others in the middle of a forward)."""
        return self._len[layer]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add rows k, v [B, H, T, D] to a layer; return all of that layer's rows [B, H, L, D]."""
        B, H, T, D = k.shape  # batch, heads, new tokens, head width
        n = self._len[layer]
        kb, vb = self._k[layer], self._v[layer]
        if kb is None or vb is None or kb.shape[2] < n + T:
            kb, vb = self._grow(layer, n + T, k, v)
        elif kb.shape[0] != B or kb.shape[1] != H or kb.shape[3] != D:
            raise ModelError(f"KVCache: rows {tuple(k.shape)} do not match the cache's {tuple(kb.shape)}")
        kb[:, :, n : n + T] = k
        vb[:, :, n : n + T] = v
        self._len[layer] = n + T
        return kb[:, :, : n + T], vb[:, :, : n + T]

    def _grow(self, layer: int, rows: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """New buffers for ``rows`` or more rows, holding the layer's current rows (doubling: amortised O(1))."""
        B, H, _, D = k.shape  # batch, heads, new tokens, head width
        n, kb, vb = self._len[layer], self._k[layer], self._v[layer]
        capacity = max(16, 2 * rows)
        new_k = k.new_empty(B, H, capacity, D)
        new_v = v.new_empty(B, H, capacity, D)
        if kb is not None and vb is not None and n:
            new_k[:, :, :n] = kb[:, :, :n]
            new_v[:, :, :n] = vb[:, :, :n]
        self._k[layer], self._v[layer] = new_k, new_v
        return new_k, new_v

    def keys(self, layer: int) -> torch.Tensor:
        kb = self._k[layer]
        if kb is None:
            raise ModelError("KVCache: the cache is empty")
        return kb[:, :, : self._len[layer]]

    def values(self, layer: int) -> torch.Tensor:
        vb = self._v[layer]
        if vb is None:
            raise ModelError("KVCache: the cache is empty")
        return vb[:, :, : self._len[layer]]

    def crop(self, length: int) -> None:
        """Keep the first ``length`` rows (Jacobi rollback, dropping a question after its answer)."""
        if length < 0 or length > self.length:
            raise ModelError(f"KVCache.crop: expected 0 <= length <= {self.length}, got {length}")
        self._len = [min(n, length) for n in self._len]

    def drop(self, start: int, stop: int) -> None:
        """Remove rows [start, stop) in every layer; later rows move up (positions are the caller's)."""
        n = self.length
        if not 0 <= start <= stop <= n:
            raise ModelError(f"KVCache.drop: expected 0 <= start <= stop <= {n}, got [{start}, {stop})")
        width = stop - start
        if width == 0:
            return
        for layer in range(self.num_layers):
            kb, vb = self._k[layer], self._v[layer]
            assert kb is not None and vb is not None
            # clone: source and destination overlap
            kb[:, :, start : n - width] = kb[:, :, stop:n].clone()
            vb[:, :, start : n - width] = vb[:, :, stop:n].clone()
            self._len[layer] = n - width

    def map_keys(self, start: int, stop: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace keys of rows [start, stop) in every layer by ``fn(keys)`` (re-rotation after a drop)."""
        for layer in range(self.num_layers):
            kb = self._k[layer]
            assert kb is not None
            kb[:, :, start:stop] = fn(kb[:, :, start:stop])

    def nbytes(self) -> int:
        """Bytes of the valid rows (what a bounded window keeps flat)."""
        total = 0
        for layer in range(self.num_layers):
            for buf in (self._k[layer], self._v[layer]):
                if buf is not None:
                    total += buf[:, :, : self._len[layer]].numel() * buf.element_size()
        return total
