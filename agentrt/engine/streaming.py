"""A streaming KV cache: frame tokens appended as they arrive, memory flat on an endless stream.

The one streaming window of the project (our nano QA model and the Hugging
Face VLMs both stream through it). The cache keeps its sinks for good
(attention sinks: softmax needs somewhere to put its mass, StreamingLLM): the
first ``sink_tokens`` rows of the stream, plus any rows appended with
``sink=True`` (a prompt). Behind them it keeps the newest ``window_tokens``
rows. Before an append would pass that bound, the oldest rows after the sinks
are dropped: row by row for plain token runs, whole for an append that brings
its own positions (an image under M-RoPE: its rows share positions, so it is
never cut). Positions are then made contiguous again, as StreamingVLM does:
the runner's ``evict`` turns the kept rows' keys back by the positions removed
(rotary rotations compose, so this is exact and needs no recompute), and the
next token goes right after the newest kept one. Positions therefore never
grow past the bound either.

A *tail* (``set_tail``) is cached after the stream without joining it (the
newest frame at full resolution, run ahead of a question); the next append
drops it. A question reuses the cached prefix: only the question's tokens (and
the answer's) run through the model; afterwards the cache is cropped back, so
asking leaves no trace. With nothing evicted, the question's logits equal those
of a full prefill of stream + question.

Works with any ``DecoderRunner`` that can ``evict``: our ``Decoder``
(``NativeRunner``, ``KVCache``) and Hugging Face models with rotary positions
(``HFCausalLMRunner``, ``DynamicCache``; M-RoPE included).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agentrt.engine.decoder import Decoder
from agentrt.engine.decoding import NativeRunner
from agentrt.errors import ConfigError, ModelError

__all__ = ["StreamingConfig", "StreamingKVCache"]


@dataclass
class StreamingConfig:
    sink_tokens: int = 4  # first rows never evicted (a system prompt fits here too)
    window_tokens: int = 512  # newest rows kept behind the sinks

    def __post_init__(self) -> None:
        if self.sink_tokens < 0:
            raise ConfigError(f"StreamingConfig.sink_tokens: expected >= 0, got {self.sink_tokens}")
        if self.window_tokens < 1:
            raise ConfigError(f"StreamingConfig.window_tokens: expected >= 1, got {self.window_tokens}")


class _Piece:
    """An append behind the sinks: its rows, the positions it spans, and its inputs (with ``keep_inputs``)."""

    __slots__ = ("rows", "span", "split", "inputs", "positions")

    def __init__(self, rows: int, span: int, split: bool, inputs: torch.Tensor | None,
                 positions: torch.Tensor | None) -> None:
        self.rows, self.span = rows, span
        self.split = split  # plain positions 0..rows-1: may be evicted row by row
        self.inputs, self.positions = inputs, positions  # [rows, ...], absolute [..., rows]

    def drop_front(self, rows: int) -> None:
        self.rows -= rows
        self.span -= rows
        if self.inputs is not None and self.positions is not None:
            self.inputs, self.positions = self.inputs[rows:], self.positions[..., rows:]


class StreamingKVCache:
    """A decoder over an endless stream within its sinks + ``window_tokens`` cached rows.

    ``model``: our ``Decoder``, a Hugging Face causal LM with rotary positions,
    or a runner (``NativeRunner`` / ``HFCausalLMRunner``). ``keep_inputs``
    keeps each kept row's input and position (renumbered with the cache) for a
    reference full prefill (``kept_inputs``, tests).

    >>> stream = StreamingKVCache(decoder, StreamingConfig(sink_tokens=4, window_tokens=256))
    >>> stream.append(ids=prompt_ids)             # a system prompt lands in the sinks
    >>> for frame_tokens in frames:               # [T, C] embeddings per frame
    ...     stream.append(embeds=frame_tokens)
    >>> stream.ask(question_ids, max_new_tokens=8)
    """

    def __init__(self, model: nn.Module | Any, config: StreamingConfig | None = None, *,
                 keep_inputs: bool = False) -> None:
        self.runner = _as_runner(model)
        self.config = config or StreamingConfig()
        self.keep_inputs = keep_inputs
        self.reset()

    @property
    def length(self) -> int:
        """Rows cached: sinks, window and tail."""
        return self.runner.cache_length(self.cache)

    @property
    def tail_span(self) -> int:
        return self.tail[1] if self.tail is not None else 0

    def reset(self) -> None:
        self.cache: Any = self.runner.new_cache()
        self.sink_rows = 0  # rows never evicted
        self.pieces: deque[_Piece] = deque()  # appends behind the sinks, oldest first
        self.sink_inputs: list[tuple[torch.Tensor, torch.Tensor]] = []  # with keep_inputs
        self.next_pos = 0  # where the next append starts (tail excluded)
        self.tail: tuple[int, int] | None = None  # (rows, span) cached after the stream
        self.evicted = 0  # rows dropped since the start of the stream
        self.appended = 0  # rows ever appended
        self.peak_length = 0

    @torch.no_grad()
    def append(self, ids: torch.Tensor | None = None, *, embeds: torch.Tensor | None = None,
               positions: torch.Tensor | None = None, span: int | None = None,
               sink: bool = False) -> torch.Tensor:
        """Append tokens (ids [T] or embeddings [T, C]); returns the logits after the last one [V].

        ``positions`` [T] or [3, T] (M-RoPE), counted from 0, and ``span`` (the
        positions the append occupies) are for pieces whose positions are not
        0..T-1, like an image's grid; such an append is evicted whole. ``sink``:
        these rows are sinks too (a prompt), allowed before any other row.
        """
        x = self._as_batch(ids, embeds)
        T = x.shape[1]
        split = positions is None
        rel = torch.arange(T) if positions is None else positions
        span = T if span is None else span
        self.drop_tail()
        sinks_open = not self.pieces and not self.evicted  # nothing but sinks so far
        if sink and not sinks_open:
            raise ModelError("StreamingKVCache.append: sink rows go before any other row; reset() first")
        if not sink and T > self.config.window_tokens:
            raise ModelError(
                f"StreamingKVCache.append: a chunk of {T} tokens does not fit the window of "
                f"{self.config.window_tokens}; append it in smaller pieces or widen the window"
            )
        if not sink:
            self._make_room(T)
        absolute = (rel + self.next_pos).to(self.runner.device)
        logits = self.runner.forward(x, absolute, self.cache)
        if sink:
            to_sinks = T
        elif sinks_open:  # the first sink_tokens rows of the stream are sinks
            to_sinks = max(0, min(T, self.config.sink_tokens - self.sink_rows))
            if to_sinks and not split:
                to_sinks = T  # a piece with its own positions is never cut: it joins the sinks whole
        else:
            to_sinks = 0
        self.sink_rows += to_sinks
        if self.keep_inputs and to_sinks:
            self.sink_inputs.append((x[0, :to_sinks], absolute[..., :to_sinks]))
        if to_sinks < T:
            rest = slice(to_sinks, T)
            kept = (x[0, rest], absolute[..., rest]) if self.keep_inputs else (None, None)
            self.pieces.append(_Piece(T - to_sinks, span - to_sinks, split, *kept))
        self.next_pos += span
        self.appended += T
        self.peak_length = max(self.peak_length, self.length)
        return logits[0, -1]

    def _make_room(self, incoming: int) -> None:
        """Drop the oldest rows after the sinks so that ``incoming`` more fit; later rows are renumbered."""
        excess = self.length + incoming - max(self.sink_rows, self.config.sink_tokens) - self.config.window_tokens
        rows = shift = 0
        while excess > 0 and self.pieces:
            piece = self.pieces[0]
            if piece.split and piece.rows > excess:
                piece.drop_front(excess)
                rows, shift, excess = rows + excess, shift + excess, 0
            else:
                self.pieces.popleft()
                rows, shift, excess = rows + piece.rows, shift + piece.span, excess - piece.rows
        if not rows:
            return
        self.runner.evict(self.cache, self.sink_rows, self.sink_rows + rows, shift)
        self.next_pos -= shift
        self.evicted += rows
        for piece in self.pieces:  # the reference sees the same renumbered window
            if piece.positions is not None:
                piece.positions = piece.positions - shift

    def set_tail(self, ids: torch.Tensor | None = None, *, embeds: torch.Tensor | None = None,
                 positions: torch.Tensor | None = None, span: int | None = None) -> None:
        """Cache tokens after the stream without making them part of it (the next append drops them);
        a question then goes after them. Replaces the previous tail."""
        self.drop_tail()
        x = self._as_batch(ids, embeds)
        rel = torch.arange(x.shape[1]) if positions is None else positions
        with torch.no_grad():
            self.runner.forward(x, (rel + self.next_pos).to(self.runner.device), self.cache)
        self.tail = (x.shape[1], x.shape[1] if span is None else span)

    def drop_tail(self) -> None:
        if self.tail is not None:
            self.runner.crop(self.cache, self.length - self.tail[0])
            self.tail = None

    def kept_inputs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Inputs and current positions of every stream row (sinks, window), in cache order (``keep_inputs``)."""
        if not self.keep_inputs:
            raise ModelError("StreamingKVCache.kept_inputs needs keep_inputs=True")
        pairs = [*self.sink_inputs, *((p.inputs, p.positions) for p in self.pieces)]
        return [x for x, _ in pairs if x is not None], [pos for _, pos in pairs if pos is not None]

    def _forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Run x after the stream and the tail (not part of the stream: the caller crops it back)."""
        start = self.next_pos + self.tail_span
        rel = torch.arange(x.shape[1]) if positions is None else positions
        return self.runner.forward(x, (rel + start).to(self.runner.device), self.cache)

    @torch.no_grad()
    def question_logits(self, question: torch.Tensor) -> torch.Tensor:
        """Logits [T, V] at each question token, reusing the cached stream; the cache is left unchanged."""
        x = self._as_batch(question, None)
        keep = self.length
        try:
            logits = self._forward(x)
        finally:
            self.runner.crop(self.cache, keep)
        return logits[0]

    def ask(self, question: torch.Tensor, *, max_new_tokens: int, stop_ids: Sequence[int] = ()) -> list[int]:
        """Greedy answer to a question about the stream so far, ending with the stop id that ended it
        (decoding stops there); the cache is cropped back afterwards."""
        x = self._as_batch(question, None)
        return list(self._answer(x, None, x.shape[1], max_new_tokens, set(stop_ids), keep_stop=True))

    def answer(self, ids: torch.Tensor | None = None, *, embeds: torch.Tensor | None = None,
               positions: torch.Tensor | None = None, span: int | None = None,
               max_new_tokens: int, stop_ids: Sequence[int] = ()) -> Generator[int, None, None]:
        """Greedy answer token ids, one at a time, to a question given as ids [T] or embeddings [T, C]
        (e.g. image rows before the words; ``positions`` / ``span`` as in ``append``); a stop id ends
        it unyielded. The question and answer rows are cropped off the cache when the answer ends,
        also when the caller stops reading early."""
        x = self._as_batch(ids, embeds)
        span = x.shape[1] if span is None else span
        return self._answer(x, positions, span, max_new_tokens, set(stop_ids), keep_stop=False)

    @torch.no_grad()
    def _answer(self, x: torch.Tensor, positions: torch.Tensor | None, span: int, max_new_tokens: int,
                stop_ids: set[int], *, keep_stop: bool) -> Generator[int, None, None]:
        keep = self.length
        axes = () if positions is None else tuple(positions.shape[:-1])  # a token's position: () or (3,)
        try:
            logits = self._forward(x, positions)[0, -1]
            for step in range(max_new_tokens):
                token = int(logits.argmax())
                if token in stop_ids:
                    if keep_stop:
                        yield token
                    return
                yield token
                if step + 1 < max_new_tokens:
                    nxt = torch.tensor([[token]], device=self.runner.device)
                    logits = self._forward(nxt, torch.full((*axes, 1), span + step))[0, -1]
        finally:
            self.runner.crop(self.cache, keep)

    def _as_batch(self, ids: torch.Tensor | None, embeds: torch.Tensor | None) -> torch.Tensor:
        if (ids is None) == (embeds is None):
            raise ModelError("StreamingKVCache: give exactly one of ids or embeds")
        x = ids if ids is not None else embeds
        assert x is not None
        if x.dim() == (1 if ids is not None else 2):
            x = x[None]
        if x.shape[0] != 1 or x.shape[1] < 1:
            raise ModelError(
                f"StreamingKVCache: expected one non-empty sequence, got shape {tuple(x.shape)}"
            )
        return x.to(self.runner.device)


def _as_runner(model: nn.Module | Any) -> Any:
    if isinstance(model, Decoder):
        return NativeRunner(model)
    if hasattr(model, "evict") and hasattr(model, "new_cache"):
        return model  # already a runner
    if isinstance(model, nn.Module):
        from agentrt.engine.hf import HFCausalLMRunner

        return HFCausalLMRunner(model)
    raise ModelError(
        f"StreamingKVCache: expected a Decoder, a causal LM or a runner, got {type(model).__name__}"
    )
