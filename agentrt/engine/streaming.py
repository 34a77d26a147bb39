"""A streaming KV cache: frame tokens appended as they arrive, memory flat on an endless stream.

The cache keeps the first ``sink_tokens`` rows of the stream for good
(attention sinks: softmax needs somewhere to put its mass, StreamingLLM) and
the newest ``window_tokens`` rows behind them. Before an append would pass
``sink_tokens + window_tokens`` rows, the oldest rows after the sinks are
dropped. Positions are then made contiguous again, as StreamingVLM does: the
kept rows' keys are rotated back by the number of rows dropped (rotary
rotations compose, so this is exact and needs no recompute), and the next
token goes at position ``length``. Positions therefore never grow past the
bound either.

A question reuses the cached prefix: only the question's tokens (and the
answer's) run through the model; afterwards the cache is cropped back to the
stream, so asking leaves no trace. With nothing evicted, the question's logits
equal those of a full prefill of stream + question.

Works with our ``Decoder`` (``KVCache``) and with Hugging Face Llama-family
models (``DynamicCache``, through ``HFCausalLMRunner.evict``).
"""

from __future__ import annotations

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
            raise ConfigError(f"StreamingConfig.sink_tokens: expected >= 0, given {self.sink_tokens}")
        if self.window_tokens < 1:
            raise ConfigError(f"StreamingConfig.window_tokens: expected >= 1, given {self.window_tokens}")

    @property
    def max_tokens(self) -> int:
        return self.sink_tokens + self.window_tokens


class StreamingKVCache:
    """A decoder over an endless stream within ``sink_tokens + window_tokens`` cached rows.

    ``model``: our ``Decoder``, a Hugging Face causal LM with rotary positions,
    or a runner (``NativeRunner`` / ``HFCausalLMRunner``).

    >>> stream = StreamingKVCache(decoder, StreamingConfig(sink_tokens=4, window_tokens=256))
    >>> stream.append(ids=prompt_ids)             # a system prompt lands in the sinks
    >>> for frame_tokens in frames:               # [T, C] embeddings per frame
    ...     stream.append(embeds=frame_tokens)
    >>> stream.ask(question_ids, max_new_tokens=8)
    """

    def __init__(self, model: nn.Module | Any, config: StreamingConfig | None = None) -> None:
        self.runner = _as_runner(model)
        self.config = config or StreamingConfig()
        self.cache: Any = self.runner.new_cache()
        self.evicted = 0  # rows dropped since the start of the stream
        self.appended = 0  # rows ever appended
        self.peak_length = 0

    @property
    def length(self) -> int:
        return self.runner.cache_length(self.cache)

    def reset(self) -> None:
        self.cache = self.runner.new_cache()
        self.evicted = self.appended = self.peak_length = 0

    @torch.no_grad()
    def append(self, ids: torch.Tensor | None = None, *, embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Append tokens (ids [T] or embeddings [T, C]); returns the logits after the last one [V]."""
        x = self._as_batch(ids, embeds)
        T = x.shape[1]
        if T > self.config.window_tokens:
            raise ModelError(
                f"StreamingKVCache.append: a chunk of {T} tokens does not fit the window of "
                f"{self.config.window_tokens}; append it in smaller pieces or widen the window"
            )
        self._make_room(T)
        logits = self._forward(x)
        self.appended += T
        self.peak_length = max(self.peak_length, self.length)
        return logits[0, -1]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.length
        return self.runner.forward(x, torch.arange(n, n + x.shape[1], device=self.runner.device), self.cache)

    def _make_room(self, incoming: int) -> None:
        """Drop the oldest rows after the sinks so that ``incoming`` more fit; later rows are renumbered."""
        length = self.length
        excess = length + incoming - self.config.max_tokens
        if excess <= 0:
            return
        sink = min(self.config.sink_tokens, length)
        excess = min(excess, length - sink)
        self.runner.evict(self.cache, sink, sink + excess)
        self.evicted += excess

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

    def ask(self, question: torch.Tensor, max_new_tokens: int, *, stop_ids: Sequence[int] = ()) -> list[int]:
        """Greedy answer to a question about the stream so far, ending with the stop id that ended it
        (decoding stops there); the cache is cropped back afterwards."""
        return list(self._answer(self._as_batch(question, None), max_new_tokens, set(stop_ids), keep_stop=True))

    def answer(self, ids: torch.Tensor | None = None, *, embeds: torch.Tensor | None = None,
               max_new_tokens: int, stop_ids: Sequence[int] = ()) -> Generator[int, None, None]:
        """Greedy answer token ids, one at a time, to a question given as ids [T] or embeddings [T, C]
        (e.g. image rows before the words); a stop id ends it unyielded. The question and answer rows
        are cropped off the cache when the answer ends, also when the caller stops reading early."""
        x = self._as_batch(ids, embeds)
        return self._answer(x, max_new_tokens, set(stop_ids), keep_stop=False)

    @torch.no_grad()
    def _answer(self, x: torch.Tensor, max_new_tokens: int, stop_ids: set[int], *,
                keep_stop: bool) -> Generator[int, None, None]:
        keep = self.length
        try:
            logits = self._forward(x)[0, -1]
            for step in range(max_new_tokens):
                token = int(logits.argmax())
                if token in stop_ids:
                    if keep_stop:
                        yield token
                    return
                yield token
                if step + 1 < max_new_tokens:
                    logits = self._forward(torch.tensor([[token]], device=self.runner.device))[0, -1]
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
                f"StreamingKVCache: expected one non-empty sequence, given shape {tuple(x.shape)}"
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
        f"StreamingKVCache: expected a Decoder, a causal LM or a runner, given {type(model).__name__}"
    )
