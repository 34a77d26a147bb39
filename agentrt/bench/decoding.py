"""`agentrt bench engine`, part 3: Jacobi decoding against greedy AR.

The time to decode a 28-token block (4 steps of a 7-dim action) on a small decoder trained here
for a few seconds on repeated actions, checked token for token (Jacobi's fixed point is the
greedy output); the same on random weights. The two are timed interleaved.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from agentrt.bench.report import percentile, print_rows
from agentrt.bench.synthetic import timed
from agentrt.engine import Decoder, DecoderConfig, NativeRunner, greedy_decode, jacobi_decode, prefill
from agentrt.engine.device import Placement

__all__ = ["run", "print_table", "decode_compare", "BLOCK_TOKENS"]

BLOCK_TOKENS = 28  # 4 steps x 7 action dims
ACTION_DIMS = 7


def _repetitive_batch(batch: int, length: int, vocab: int, g: torch.Generator) -> torch.Tensor:
    """Sequences of one 7-token action repeated (a robot holding a steady motion)."""
    action = torch.randint(0, vocab, (batch, ACTION_DIMS), generator=g, device=g.device)  # on the generator's device
    return action.repeat(1, length // ACTION_DIMS + 1)[:, :length]


def _train_decoder(steps: int, vocab: int, device: torch.device) -> tuple[Decoder, float, float]:
    """A few seconds of next-token training on ``device`` in float32; returns the model, seconds, held-out
    accuracy."""
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(vocab_size=vocab, width=96, depth=2, heads=4)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    g = torch.Generator(device=device).manual_seed(0)
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        batch = _repetitive_batch(32, 50, vocab, g)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        held = _repetitive_batch(64, 50, vocab, torch.Generator(device=device).manual_seed(1))
        predicted = model(held[:, :-1]).argmax(-1)[:, ACTION_DIMS:]
        accuracy = float((predicted == held[:, 1 + ACTION_DIMS :]).float().mean())
    return model, seconds, accuracy


def decode_compare(model: Decoder, prompts: torch.Tensor, repeats: int) -> dict:
    runner = NativeRunner(model)
    ar_ms: list[float] = []
    jacobi_ms: list[float] = []
    iterations: list[int] = []
    accepted: list[float] = []
    exact = True
    with torch.inference_mode():
        for r in range(repeats):
            for i, prompt in enumerate(prompts):
                runs: list[tuple[str, list[float]]] = [("ar", ar_ms), ("jacobi", jacobi_ms)]
                tokens: dict[str, list[int]] = {}
                for kind, out in runs if (i + r) % 2 else runs[::-1]:
                    cache, last = prefill(runner, prompt)  # untimed: both share the same prefill
                    if kind == "ar":
                        result, ms = timed(
                            greedy_decode, runner, None, BLOCK_TOKENS, cache=cache, last_logits=last
                        )
                    else:
                        result, ms = timed(
                            jacobi_decode, runner, None, BLOCK_TOKENS, cache=cache, last_logits=last
                        )
                        iterations.append(result.stats.iterations)
                        accepted.append(result.stats.mean_accepted)
                    out.append(ms)
                    tokens[kind] = result.tokens
                exact = exact and tokens["ar"] == tokens["jacobi"]
    ar = statistics.median(ar_ms)
    jac = statistics.median(jacobi_ms)
    return {
        "block_tokens": BLOCK_TOKENS,
        "prompts": int(prompts.shape[0]),
        "ar_ms": ar,
        "jacobi_ms": jac,
        "speedup": ar / jac,
        "exact": exact,
        "iterations_mean": statistics.fmean(iterations),
        "iterations_p90": percentile([float(i) for i in iterations], 90),
        "accepted_per_pass": statistics.fmean(accepted),
    }


def run(quick: bool, device: str = "cpu", dtype: str = "float32") -> dict:
    """Trained in float32 on ``device``, then both models compared in ``dtype`` there."""
    vocab = 64
    where = Placement.parse(device, dtype)
    model, train_s, accuracy = _train_decoder(150 if quick else 400, vocab, where.device)
    model = model.to(where.dtype)
    prompts = _repetitive_batch(
        4 if quick else 12, 14, vocab, torch.Generator(device=where.device).manual_seed(2)
    )  # two actions
    trained = decode_compare(model, prompts, 2 if quick else 3)
    trained.update(
        {
            "model": "trained: 2 layers, width 96, on repeated 7-token actions",
            "train_s": train_s,
            "train_accuracy": accuracy,
        }
    )
    torch.manual_seed(1)
    random_model = Decoder(DecoderConfig(vocab_size=vocab, width=96, depth=2, heads=4)).eval()
    with torch.no_grad():
        for p in random_model.parameters():
            if p.dim() >= 2:
                p.normal_(std=0.4)  # the default init repeats one token; larger weights make a varied output
    random_model = random_model.to(where.device, where.dtype)  # drawn on the CPU: the same weights everywhere
    random_prompts = torch.randint(
        0, vocab, (4 if quick else 12, 14), generator=torch.Generator(device=where.device).manual_seed(3),
        device=where.device,
    )
    trained["random_weights"] = decode_compare(random_model, random_prompts, 1 if quick else 2)
    return trained


def print_table(d: dict) -> None:
    rnd = d["random_weights"]
    print_rows(
        f"Decoding a {d['block_tokens']}-token block: Jacobi vs greedy AR",
        ["model", "AR ms", "Jacobi ms", "speedup", "passes", "tok/pass", "exact"],
        [
            [
                "trained (repeated actions)",
                d["ar_ms"],
                d["jacobi_ms"],
                d["speedup"],
                d["iterations_mean"],
                d["accepted_per_pass"],
                str(d["exact"]),
            ],
            [
                "random weights",
                rnd["ar_ms"],
                rnd["jacobi_ms"],
                rnd["speedup"],
                rnd["iterations_mean"],
                rnd["accepted_per_pass"],
                str(rnd["exact"]),
            ],
        ],
    )
