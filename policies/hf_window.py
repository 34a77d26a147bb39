"""The LM side of a Hugging Face VLM on a stream: a sequence builder and the bounded KV window.

Text and image pieces become `Chunk`s of embeddings and positions; under
Qwen2-VL's M-RoPE every position is 3-D (t, h, w) and an image gets grid
positions. The LM's KV cache is a bounded streaming window (`KVWindow`): a
prompt in the sinks, whole frames behind it, the oldest frames evicted first.
Kept keys are re-rotated by the positions removed, as ``StreamingKVCache``
does. For Qwen2-VL's M-RoPE this is exact too: every kept row's (t, h, w)
position moves by the same amount, and rotary frequency j turns by shift x
inv_freq[j] whichever of t, h or w it reads, so one rotation renumbers all
three (a test checks it against a full prefill of the kept window).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agentrt.engine.decoder import rotate_with
from agentrt.engine.hf import HFCausalLMRunner
from agentrt.errors import ModelError

__all__ = ["Chunk", "Builder", "TextLM", "KVWindow", "join"]


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

    def forward(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor, use_cache: bool = True,
                cache: Any = None) -> Any:
        pos = position_ids[0]  # [3, T] (the runner adds a batch axis in front)
        pos = pos[:, None] if self.mrope else pos[:1]  # [3, 1, T] or [1, T]
        out = self.model(inputs_embeds=inputs_embeds, position_ids=pos, cache=cache, use_cache=use_cache)
        # only the last position's logits are ever read: the head over a 49k vocabulary is not free
        return _Logits(self.head(out.last_hidden_state[:, -1:]))


@dataclass
class _Logits:
    logits: torch.Tensor


class KVWindow:
    """The LM's KV cache over the stream: a prompt (sinks), then whole frames, at most sinks + window rows."""

    def __init__(self, lm: TextLM, window_tokens: int, keep_transcript: bool) -> None:
        self.runner = HFCausalLMRunner(lm)
        self.window_tokens = window_tokens
        self.keep_transcript = keep_transcript
        rotary = getattr(lm.model, "rotary_emb", None)
        if rotary is None or getattr(rotary, "attention_scaling", 1.0) != 1.0:
            raise ModelError(f"{type(lm.model).__name__}: the streaming window needs plain rotary positions "
                             "(rotary_emb with attention_scaling 1.0)")
        self.inv_freq = rotary.inv_freq
        self.reset()

    def reset(self) -> None:
        self.cache = self.runner.new_cache()
        self.sink_rows = 0
        self.frames: list[tuple[int, int]] = []  # (rows, span) of each frame behind the sinks, oldest first
        self.transcript: list[Chunk] = []  # sinks + frames' inputs, only with keep_transcript
        self.next_pos = 0
        self.evicted_rows = 0
        self.tail: Chunk | None = None  # cached after the frames, replaced by the next append (the slow frame)

    @property
    def length(self) -> int:
        return self.runner.cache_length(self.cache)

    @property
    def tail_span(self) -> int:
        return self.tail.span if self.tail is not None else 0

    def set_tail(self, chunk: Chunk | None) -> None:
        """Cache ``chunk`` after the frames without making it part of the stream; the next append drops it."""
        self._drop_tail()
        if chunk is not None:
            self.forward(chunk)
            self.tail = chunk

    def _drop_tail(self) -> None:
        if self.tail is not None:
            self.runner.crop(self.cache, self.length - self.tail.rows)
            self.tail = None

    def forward(self, chunk: Chunk, offset: int = 0) -> torch.Tensor:
        """Run a chunk at the next positions (+ offset); the cache grows by it. Returns the last logits [1, V]."""
        pos = (chunk.positions + self.next_pos + offset).to(self.runner.device)
        return self.runner.forward(chunk.embeds[None], pos, self.cache)[0]

    def append(self, chunk: Chunk, *, sink: bool = False) -> None:
        if not sink and chunk.rows > self.window_tokens:
            raise ModelError(f"a frame of {chunk.rows} LM tokens does not fit window_tokens={self.window_tokens}: "
                             "lower fast_tokens or widen the window")
        self._drop_tail()
        if not sink:
            self._make_room(chunk.rows)
        if self.keep_transcript:
            self.transcript.append(Chunk(chunk.embeds, chunk.positions + self.next_pos, chunk.span))
        self.forward(chunk)
        self.next_pos += chunk.span
        if sink:
            self.sink_rows += chunk.rows
        else:
            self.frames.append((chunk.rows, chunk.span))

    def _make_room(self, incoming: int) -> None:
        """Evict the oldest frames so ``incoming`` rows fit; later keys are turned back by the positions removed."""
        excess = self.length + incoming - (self.sink_rows + self.window_tokens)
        drop_rows = drop_pos = count = 0
        while excess > 0 and count < len(self.frames):
            rows, span = self.frames[count]
            drop_rows, drop_pos, excess, count = drop_rows + rows, drop_pos + span, excess - rows, count + 1
        if not count:
            return
        start, stop = self.sink_rows, self.sink_rows + drop_rows
        for layer in self.cache.layers:
            keys, values = layer.keys, layer.values  # [B, H, L, D]
            shift = torch.full((keys.shape[-2] - stop,), -float(drop_pos))
            tail = rotate_with(keys[..., stop:, :], shift, self.inv_freq)
            layer.keys = torch.cat([keys[..., :start, :], tail], dim=-2)
            layer.values = torch.cat([values[..., :start, :], values[..., stop:, :]], dim=-2)
        del self.frames[:count]
        self.next_pos -= drop_pos
        self.evicted_rows += drop_rows
        if self.keep_transcript:  # the reference sees the same renumbered window
            sinks = len(self.transcript) - len(self.frames) - count
            kept = self.transcript[sinks + count:]
            self.transcript = self.transcript[:sinks] + [
                Chunk(c.embeds, c.positions - drop_pos, c.span) for c in kept]

    def kv_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for layer in self.cache.layers
                   for t in (layer.keys, layer.values) if t is not None)


def join(first: Chunk | None, second: Chunk) -> Chunk:
    """Two chunks as one: the second's positions follow the first's span."""
    if first is None:
        return second
    return Chunk(torch.cat([first.embeds, second.embeds]),
                 torch.cat([first.positions, second.positions + first.span], dim=1), first.span + second.span)
