"""Decoding a block of tokens: greedy autoregressive (the reference) and Jacobi (exact, parallel).

Jacobi decoding guesses the whole block, runs it through the model in one
pass, and takes every position's argmax as the next guess. The first token of
a guess is always right (it was predicted from an exact prefix), and a prefix
that agrees with its own predictions is final, so each pass fixes at least one
more token and the fixed point is the greedy output (REFERENCES §5). That holds
only if the KV cache holds the accepted prefix alone, at the right positions:
the cache is cropped to the accepted prefix after every pass.

Early exit trades exactness for passes: a cap on passes, or a tolerance in
action bins (stop when every token that still changes is an action id that
moved by at most ``tolerance_bins``). With neither, Jacobi equals greedy token
for token.

Both functions drive a ``DecoderRunner``: ``NativeRunner`` for our ``Decoder``,
``agentrt.engine.hf.HFCausalLMRunner`` for Hugging Face causal LMs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from agentrt.engine.decoder import Decoder, rope_rotate
from agentrt.engine.device import model_device
from agentrt.engine.graphs import PassSet, graphs_wanted, placement
from agentrt.engine.kv_cache import KVCache
from agentrt.errors import ConfigError, ModelError

__all__ = [
    "DecoderRunner",
    "NativeRunner",
    "DecodeStats",
    "DecodeResult",
    "JacobiConfig",
    "prefill",
    "greedy_decode",
    "jacobi_decode",
]


class DecoderRunner(Protocol):
    """What decoding needs from a model: one forward over a cache, and cache rollback; streaming
    (``StreamingKVCache``) also needs ``evict``, the model-specific half of its window."""

    @property
    def device(self) -> torch.device:
        """Where inputs go: the model's device now (runners follow their model)."""
        ...

    def new_cache(self) -> Any: ...

    def forward(self, inputs: torch.Tensor, positions: torch.Tensor, cache: Any) -> torch.Tensor:
        """inputs: ids [1, T] or embeddings [1, T, C]; positions [T]; appends T rows; -> logits [1, T, V]."""
        ...

    def cache_length(self, cache: Any) -> int: ...

    def crop(self, cache: Any, length: int) -> None: ...

    def evict(self, cache: Any, start: int, stop: int, shift: int | None = None) -> None:
        """Drop rows [start, stop); turn the later rows' keys back by ``shift`` positions (default
        stop - start; more when the dropped rows spanned more positions, as an M-RoPE image does)."""
        ...


class NativeRunner:
    """Our ``Decoder`` with its cache: a growing ``KVCache``, or with ``max_length`` a ``StaticKVCache``.

    ``graphs`` (``GRAPH_MODES``): with ``max_length``, "auto" replays the 1-token pass and the block pass
    (2..``block`` tokens, padded) as CUDA graphs when the model is on CUDA (``agentrt.engine.graphs``);
    "static" runs those static-shape passes uncaptured on any device (the graphs' reference, and what the
    CPU tests check); "off" never. With graphs the runner decodes one sequence at a time (``new_cache`` empties and hands out its
    one cache). The device is read from the model at every call, so moving the model later is fine
    (graphs are made again for the new parameters).
    """

    def __init__(self, model: Decoder, *, max_length: int | None = None, graphs: str = "auto",
                 block: int = 32) -> None:
        graphs_wanted(graphs, torch.device("cpu"))  # validates the mode
        if max_length is not None and max_length < 1 or block < 1:
            raise ConfigError(f"NativeRunner: expected max_length >= 1 (or None) and block >= 1, got {max_length}, {block}")
        self.model = model
        self.max_length, self.graphs, self.block = max_length, graphs, block
        self._passes: PassSet | None = None

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def new_cache(self) -> KVCache:
        if self.max_length is None:
            return self.model.new_cache()
        if not graphs_wanted(self.graphs, self.device):
            self._passes = None
            return self.model.new_cache(self.max_length)
        if self._passes is None or self._passes.placement != placement(self.model):
            capture = self.graphs == "auto"  # wanted with auto: the model is on CUDA
            self._passes = PassSet(self.model, self.max_length, self.block, capture=capture)
        return self._passes.new_cache()

    def forward(self, inputs: torch.Tensor, positions: torch.Tensor, cache: KVCache) -> torch.Tensor:
        passes = self._passes
        if passes is not None and passes.serves(cache, inputs):
            return passes.run(inputs, positions)
        if inputs.is_floating_point():
            return self.model(embeds=inputs, positions=positions, cache=cache)
        return self.model(inputs, positions=positions, cache=cache)

    def cache_length(self, cache: KVCache) -> int:
        return cache.length

    def crop(self, cache: KVCache, length: int) -> None:
        cache.crop(length)

    def evict(self, cache: KVCache, start: int, stop: int, shift: int | None = None) -> None:
        """Drop rows [start, stop); rotate the later rows' keys back so positions stay contiguous."""
        cache.drop(start, stop)
        turn = torch.tensor([-float(stop - start if shift is None else shift)])
        theta = self.model.config.rope_theta
        cache.map_keys(start, cache.length, lambda k: rope_rotate(k, turn.expand(k.shape[2]), theta))


@dataclass
class DecodeStats:
    """Model passes after the prefill, and how many tokens each pass made final."""

    iterations: int = 0
    accepted_per_pass: list[int] = field(default_factory=list)
    early_exit: str = ""  # "" (exact), "cap" or "tolerance"

    @property
    def mean_accepted(self) -> float:
        return sum(self.accepted_per_pass) / len(self.accepted_per_pass) if self.accepted_per_pass else 0.0


@dataclass
class DecodeResult:
    tokens: list[int]
    stats: DecodeStats


@dataclass
class JacobiConfig:
    max_iterations: int | None = None  # cap σ on passes; None = the block length, which never binds
    tolerance_bins: int = 0  # early exit when every changing token moved <= this many action bins; 0 = exact
    # action_ids is a keyword of jacobi_decode, as of greedy_decode: it belongs to the vocabulary, not the method

    def __post_init__(self) -> None:
        if self.max_iterations is not None and self.max_iterations < 1:
            raise ConfigError(
                f"JacobiConfig.max_iterations: expected >= 1 or None, got {self.max_iterations}"
            )
        if self.tolerance_bins < 0:
            raise ConfigError(f"JacobiConfig.tolerance_bins: expected >= 0, got {self.tolerance_bins}")


def _check_ids(action_ids: tuple[int, int] | None) -> None:
    if action_ids is not None and not 0 <= action_ids[0] < action_ids[1]:
        raise ConfigError(f"action_ids: expected [start, stop) with 0 <= start < stop, got {action_ids}")


def _pick(logits: torch.Tensor, action_ids: tuple[int, int] | None) -> torch.Tensor:
    """Argmax over the last axis, restricted to [start, stop) when given (no silent clipping)."""
    if action_ids is None:
        return logits.argmax(dim=-1)
    start, stop = action_ids
    return logits[..., start:stop].argmax(dim=-1) + start


def prefill(runner: DecoderRunner, prompt: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """Run the prompt (ids [T] / [1, T] or embeddings [1, T, C]); -> (cache, last logits [V])."""
    if not prompt.is_floating_point() and prompt.dim() == 1:
        prompt = prompt[None]
    if prompt.shape[0] != 1 or prompt.shape[1] < 1:
        raise ModelError(f"prefill: expected one non-empty sequence, got shape {tuple(prompt.shape)}")
    prompt = prompt.to(runner.device)
    cache = runner.new_cache()
    positions = torch.arange(prompt.shape[1], device=runner.device)
    logits = runner.forward(prompt, positions, cache)
    return cache, logits[0, -1]


def _start(
    runner: DecoderRunner, prompt: torch.Tensor | None, cache: Any, last_logits: torch.Tensor | None, n: int
) -> tuple[Any, torch.Tensor]:
    if n < 1:
        raise ConfigError(f"decode: expected n_tokens >= 1, got {n}")
    if prompt is not None:
        if cache is not None:
            raise ModelError("decode: give a prompt or a prefilled cache with its last logits, not both")
        return prefill(runner, prompt)
    if cache is None or last_logits is None:
        raise ModelError("decode: without a prompt, give cache= and last_logits= from a prefill")
    return cache, last_logits.reshape(-1)


@torch.no_grad()
def greedy_decode(
    runner: DecoderRunner,
    prompt: torch.Tensor | None,
    n_tokens: int,
    *,
    action_ids: tuple[int, int] | None = None,
    cache: Any = None,
    last_logits: torch.Tensor | None = None,
) -> DecodeResult:
    """The reference: one token per pass. The cache ends holding the prompt and the first n - 1 tokens."""
    _check_ids(action_ids)
    cache, logits = _start(runner, prompt, cache, last_logits, n_tokens)
    position = runner.cache_length(cache)
    tokens = [int(_pick(logits, action_ids))]
    stats = DecodeStats()
    device = runner.device
    for _ in range(n_tokens - 1):
        ids = torch.tensor([[tokens[-1]]], device=device)
        lg = runner.forward(ids, torch.tensor([position], device=device), cache)  # [1, 1, V]
        position += 1
        tokens.append(int(_pick(lg[0, -1], action_ids)))
        stats.iterations += 1
        stats.accepted_per_pass.append(1)
    return DecodeResult(tokens, stats)


@torch.no_grad()
def jacobi_decode(
    runner: DecoderRunner,
    prompt: torch.Tensor | None,
    n_tokens: int,
    config: JacobiConfig | None = None,
    *,
    action_ids: tuple[int, int] | None = None,
    init: Sequence[int] | None = None,
    cache: Any = None,
    last_logits: torch.Tensor | None = None,
) -> DecodeResult:
    """Decode n tokens in parallel passes; equal to ``greedy_decode`` unless an early exit fires.

    ``init``: the first guess for tokens 2..n (the previous action chunk is a
    good one); it is padded with the first token. The cache ends holding the
    prompt and the rows known exact: the first n - 1 tokens after a full
    decode, the accepted prefix after an early exit.
    """
    cfg = config or JacobiConfig()
    _check_ids(action_ids)
    if cfg.tolerance_bins and action_ids is None:
        raise ConfigError("jacobi_decode: tolerance_bins needs action_ids (the bins are measured in action ids)")
    ids_range = action_ids
    cache, logits = _start(runner, prompt, cache, last_logits, n_tokens)
    start = runner.cache_length(cache)
    P = start  # rows in the cache: prompt + accepted tokens
    first = int(_pick(logits, ids_range))
    guess = list(init or [])[: n_tokens - 1]
    y = [first] + guess + [first] * (n_tokens - 1 - len(guess))
    accepted: list[int] = []
    stats = DecodeStats()
    cap = cfg.max_iterations if cfg.max_iterations is not None else n_tokens
    device = runner.device
    while len(y) > 1:  # y[0] is always exact; a one-token remainder needs no pass
        m = len(y)
        # the last row would only predict the token after the block, and its cache row is never kept: skip it
        lg = runner.forward(
            torch.tensor([y[:-1]], device=device), torch.arange(P, P + m - 1, device=device), cache
        )  # [1, m - 1, V]; appends m - 1 rows
        y_new = [y[0]] + _pick(lg[0], ids_range).tolist()
        stats.iterations += 1
        k = next((i for i in range(1, m) if y_new[i] != y[i]), m)  # y[:k] agree with their predictions: final
        stats.accepted_per_pass.append(k)
        if k == m:  # fixed point: every row appended this pass is exact, and they end at start + n - 1
            accepted += y
            return DecodeResult(accepted, stats)
        runner.crop(cache, P + k)  # drop the draft rows; y_new[k] is exact (its prefix is)
        P += k
        accepted += y[:k]
        if cfg.tolerance_bins and _within_tolerance(y, y_new, k, cfg.tolerance_bins, ids_range):
            stats.early_exit = "tolerance"
            return DecodeResult(accepted + y_new[k:], stats)
        y = y_new[k:]
        if stats.iterations >= cap:
            stats.early_exit = "cap"
            return DecodeResult(accepted + y, stats)
    accepted += y
    if runner.cache_length(cache) > start + n_tokens - 1:
        runner.crop(cache, start + n_tokens - 1)
    return DecodeResult(accepted, stats)


def _within_tolerance(
    y: list[int], y_new: list[int], k: int, tolerance: int, action_ids: tuple[int, int] | None
) -> bool:
    """Every token that changed is an action id on both sides and moved by at most ``tolerance`` bins."""
    assert action_ids is not None
    lo, hi = action_ids
    for old, new in zip(y[k:], y_new[k:], strict=True):
        if old == new:
            continue
        if not (lo <= old < hi and lo <= new < hi) or abs(new - old) > tolerance:
            return False
    return True
