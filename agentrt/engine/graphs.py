"""Static-shape decoder passes, captured once as CUDA graphs and replayed: the 1-token pass (AR) and the
block pass (Jacobi).

A small decoder on a GPU is bound by Python and kernel launches (~2.9 ms a pass for the nano VLA on an
H200 against ~1 ms on one CPU thread), and a graph replays a whole pass as one launch. A graph replays
fixed shapes at fixed addresses, so a ``StaticPass`` reads its inputs from tensors it owns, writes the
cache rows ``start + 0 .. start + size - 1`` of one ``StaticKVCache`` and attends over that cache's whole
buffer under a mask (``Decoder.forward(rows=...)``). A shorter block is padded to ``size``: the padding
rows' outputs are never read and their cache rows lie past the valid length, where the next pass
overwrites them and no valid query can see them.

``graphs="static"`` runs the same passes uncaptured on any device: the CPU tests exercise all of the
bookkeeping that way, and on CUDA it is the reference the graphs are compared with, token for token
(the eager path too), in a test that needs a GPU.
"""

from __future__ import annotations

from typing import Any

import torch

from agentrt.engine.decoder import Decoder
from agentrt.engine.static_cache import StaticKVCache
from agentrt.errors import ConfigError

__all__ = ["GRAPH_MODES", "graphs_wanted", "StaticPass", "PassSet"]

# auto: static-shape passes captured as CUDA graphs on CUDA, eager elsewhere; static: those passes uncaptured
# on any device (the reference for the graphs, and what CPU tests run); off: always eager
GRAPH_MODES = ("auto", "static", "off")


def graphs_wanted(mode: str, device: torch.device) -> bool:
    """Whether a runner in this mode uses static-shape passes on this device."""
    if mode not in GRAPH_MODES:
        raise ConfigError(f"graphs: expected one of {', '.join(GRAPH_MODES)}, got {mode!r}")
    return mode == "static" or (mode == "auto" and device.type == "cuda")


class StaticPass:
    """One forward of ``size`` token ids over ``cache``, fed through static tensors; with ``capture``, a CUDA graph."""

    def __init__(self, decoder: Decoder, cache: StaticKVCache, size: int, *, capture: bool = False,
                 pool: Any = None) -> None:
        self.decoder, self.cache, self.size = decoder, cache, size
        device = cache.device
        with torch.inference_mode(False):  # plain tensors: written in place under no_grad and inference_mode alike
            self.ids = torch.zeros(1, size, dtype=torch.long, device=device)
            self.positions = torch.zeros(size, dtype=torch.long, device=device)
            self.start = torch.zeros((), dtype=torch.long, device=device)  # the cache's length before the pass
            self.offsets = torch.arange(size, device=device)
        self.start.fill_(cache.length)  # warm-up and capture write rows from here: past the valid ones, never over them
        self.logits = torch.empty(0)
        self.graph: torch.cuda.CUDAGraph | None = None
        if capture:
            self._capture(pool)

    def _run(self) -> None:
        self.logits = self.decoder(self.ids, positions=self.positions, cache=self.cache, rows=self.start + self.offsets)

    def _capture(self, pool: Any) -> None:
        device = self.cache.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up off the main stream, as capture requires (lazy inits, autotuning)
            for _ in range(2):
                self._run()
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self._run()

    def __call__(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """ids [1, T], positions [T], T <= size, appended after the cache's rows -> logits [1, T, V]."""
        T, length = ids.shape[1], self.cache.length
        self.ids[:, :T].copy_(ids)
        self.positions[:T].copy_(positions)
        self.start.fill_(length)
        if self.graph is not None:
            self.graph.replay()
        else:
            self._run()
        self.cache.set_length(length + T)
        return self.logits[:, :T].clone()  # the static output is overwritten by the next replay


class PassSet:
    """A decoder's one ``StaticKVCache`` and its static passes: 1 token, and blocks of 2..``block`` tokens
    padded to ``block``; each made (with ``capture``, captured: CUDA only) on first use. Decodes one sequence
    at a time: ``new_cache`` hands out the same cache, emptied."""

    def __init__(self, decoder: Decoder, max_length: int, block: int, *, capture: bool) -> None:
        self.decoder, self.block = decoder, block
        with torch.inference_mode(False):
            cache = decoder.new_cache(max_length)
        assert isinstance(cache, StaticKVCache)
        self.cache = cache
        self.placement = placement(decoder)
        if capture and cache.device.type != "cuda":
            raise ConfigError(f"PassSet: CUDA graphs need a CUDA device, the decoder is on {cache.device}")
        self.capture = capture
        self.pool = torch.cuda.graph_pool_handle() if capture else None
        self.passes: dict[int, StaticPass] = {}

    def new_cache(self) -> StaticKVCache:
        self.cache.set_length(0)
        return self.cache

    def serves(self, cache: object, ids: torch.Tensor) -> bool:
        """Whether ``run`` takes this forward: ids (not embeddings) into this cache, short enough to fit."""
        T = ids.shape[1]
        return (cache is self.cache and not ids.is_floating_point() and T <= self.block
                and self.cache.length + (1 if T == 1 else self.block) <= self.cache.max_length)

    def run(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        size = 1 if ids.shape[1] == 1 else self.block
        step = self.passes.get(size)
        if step is None:
            step = self.passes[size] = StaticPass(self.decoder, self.cache, size, capture=self.capture, pool=self.pool)
        return step(ids, positions)


def placement(model: torch.nn.Module) -> tuple[tuple[torch.device, torch.dtype, int], ...]:
    """Where every parameter lives: a captured graph reads these addresses, so a moved model needs new passes."""
    return tuple((p.device, p.dtype, p.data_ptr()) for p in model.parameters())
