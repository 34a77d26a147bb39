"""The LM side of a Hugging Face VLM on a stream: a sequence builder and the bounded KV window.

Text and image pieces become `Chunk`s of embeddings and positions; under
Qwen2-VL's M-RoPE every position is 3-D (t, h, w) and an image gets grid
positions. The LM's KV cache is the engine's streaming window
(``StreamingKVCache``, seen through `KVWindow`): a prompt in the sinks, whole
frames behind it, the oldest frames evicted first, kept keys re-rotated by the
positions removed (``HFCausalLMRunner.evict``; exact under Qwen2-VL's M-RoPE
too, a test checks it against a full prefill of the kept window).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agentrt.engine.hf import HFCausalLMRunner
from agentrt.engine.streaming import StreamingConfig, StreamingKVCache
from agentrt.errors import ModelError

__all__ = ["Chunk", "Builder", "TextLM", "KVWindow", "join", "text_deltas"]


@dataclass
class Chunk:
    """Inputs of one piece of the LM sequence: embeddings [T, C], positions [3, T] from 0, span."""

    embeds: torch.Tensor
    positions: torch.Tensor
    span: int  # positions the chunk occupies; the next chunk starts this far on

    @property
    def rows(self) -> int:
        return int(self.embeds.shape[0])


class Builder:
    """Concatenates text and image pieces; images get (t, h, w) grid positions under M-RoPE."""

    def __init__(self, mrope: bool) -> None:
        self.mrope = mrope
        self.embeds: list[torch.Tensor] = []
        self.positions: list[torch.Tensor] = []
        self.span = 0

    def text(self, embeds: torch.Tensor) -> None:
        T = embeds.shape[0]
        if T:
            self.embeds.append(embeds)
            self.positions.append(torch.arange(self.span, self.span + T).expand(3, T))
            self.span += T

    def image(self, grid: torch.Tensor) -> None:
        """grid [h, w, C] of LM-space tokens, row-major."""
        h, w, C = grid.shape
        if not self.mrope:
            self.text(grid.reshape(h * w, C))
            return
        rows = torch.arange(h)[:, None].expand(h, w).reshape(-1)
        cols = torch.arange(w)[None, :].expand(h, w).reshape(-1)
        self.embeds.append(grid.reshape(h * w, C))
        self.positions.append(torch.stack([torch.zeros_like(rows), rows, cols]) + self.span)
        self.span += max(h, w)

    def video(self, grid: torch.Tensor, time_interval: float) -> None:
        """grid [t, h, w, C] of LM-space tokens (M-RoPE only): temporal patch i at time position
        ``int(i * time_interval)``; the next piece follows at ``max(h, w)``, as transformers' get_rope_index."""
        t, h, w, C = grid.shape
        times = (torch.arange(t) * time_interval).long()[:, None, None].expand(t, h, w).reshape(-1)
        rows = torch.arange(h)[None, :, None].expand(t, h, w).reshape(-1)
        cols = torch.arange(w)[None, None, :].expand(t, h, w).reshape(-1)
        self.embeds.append(grid.reshape(t * h * w, C))
        self.positions.append(torch.stack([times, rows, cols]) + self.span)
        self.span += max(h, w)

    def chunk(self) -> Chunk:
        return Chunk(torch.cat(self.embeds), torch.cat(self.positions, dim=1), self.span)


class TextLM(nn.Module):
    """The VLM's language model + head as a plain causal LM, so `HFCausalLMRunner` can drive it."""

    def __init__(self, lm: Any, head: Any, mrope: bool) -> None:
        super().__init__()
        self.model = lm  # HFCausalLMRunner / rotary lookups read `.model`
        self.head = head
        self.config = lm.config
        self.mrope = mrope

    def forward(self, inputs_embeds: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                use_cache: bool = True, cache: Any = None, input_ids: torch.Tensor | None = None) -> Any:
        assert position_ids is not None
        pos = position_ids[0]  # [3, T] (the runner adds a batch axis in front)
        pos = pos[:, None] if self.mrope else pos[:1]  # [3, 1, T] or [1, T]
        out = self.model(input_ids=input_ids, inputs_embeds=inputs_embeds, position_ids=pos, cache=cache,
                         use_cache=use_cache)
        # only the last position's logits are ever read: the head over a 49k vocabulary is not free
        return _Logits(self.head(out.last_hidden_state[:, -1:]))


@dataclass
class _Logits:
    logits: torch.Tensor


class KVWindow:
    """The engine's streaming window over the LM, fed `Chunk`s: a prompt (sinks), then whole frames."""

    def __init__(self, lm: TextLM, window_tokens: int, keep_transcript: bool) -> None:
        self.window_tokens = window_tokens
        self.stream = StreamingKVCache(HFCausalLMRunner(lm), StreamingConfig(sink_tokens=0, window_tokens=window_tokens),
                                       keep_inputs=keep_transcript)
        self.reset()

    def reset(self) -> None:
        self.stream.reset()
        self.tail: Chunk | None = None  # cached after the frames, replaced by the next append (the slow frame)

    @property
    def length(self) -> int:
        return self.stream.length

    @property
    def sink_rows(self) -> int:
        return self.stream.sink_rows

    @property
    def evicted_rows(self) -> int:
        return self.stream.evicted

    @property
    def next_pos(self) -> int:
        return self.stream.next_pos

    def append(self, chunk: Chunk, *, sink: bool = False) -> None:
        """A prompt (``sink``) or a frame; the oldest frames are evicted whole to make room."""
        if not sink and chunk.rows > self.window_tokens:
            raise ModelError(f"a frame of {chunk.rows} LM tokens does not fit window_tokens={self.window_tokens}: "
                             "lower fast_tokens or widen the window")
        self.tail = None  # the engine drops it
        self.stream.append(embeds=chunk.embeds, positions=chunk.positions, span=chunk.span, sink=sink)

    def set_tail(self, chunk: Chunk | None) -> None:
        """Cache ``chunk`` after the frames without making it part of the stream; the next append drops it."""
        self.stream.drop_tail()
        self.tail = chunk
        if chunk is not None:
            self.stream.set_tail(embeds=chunk.embeds, positions=chunk.positions, span=chunk.span)

    def answer(self, chunk: Chunk, *, max_new_tokens: int, stop_ids: set[int]) -> Iterator[int]:
        """Greedy answer ids to ``chunk`` after the stream and its tail; the cache is cropped back when done."""
        return self.stream.answer(embeds=chunk.embeds, positions=chunk.positions, span=chunk.span,
                                  max_new_tokens=max_new_tokens, stop_ids=sorted(stop_ids))

    def transcript(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs [L, C] and positions [3, L] of the kept stream rows, renumbered as the cache (keep_transcript)."""
        embeds, positions = self.stream.kept_inputs()
        return torch.cat(embeds), torch.cat([p.cpu() for p in positions], dim=1)

    def kv_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for layer in self.stream.cache.layers
                   for t in (layer.keys, layer.values) if t is not None)


def join(first: Chunk | None, second: Chunk) -> Chunk:
    """Two chunks as one: the second's positions follow the first's span."""
    if first is None:
        return second
    return Chunk(torch.cat([first.embeds, second.embeds]),
                 torch.cat([first.positions, second.positions + first.span], dim=1), first.span + second.span)


def text_deltas(tokens: Iterable[int], decode: Callable[[list[int]], str]) -> Iterator[str]:
    """Answer token ids as text pieces, each yielded once it decodes whole (``decode`` of all ids so far)."""
    ids: list[int] = []
    text = ""
    for token in tokens:
        ids.append(token)
        full = decode(ids)
        if full.endswith("\ufffd"):
            continue  # half of a multi-byte character: wait for the rest
        if len(full) > len(text) and full.startswith(text):
            yield full[len(text):]
        text = full
