"""`agentrt bench qa`: live-stream question answering over a simulated, time-compressed stream.

    agentrt bench qa --quick                      # a tiny random SmolVLM, within 60 s (1 torch thread)
    agentrt bench qa --json runs/bench-qa.json    # a SmolLM2-135M-shaped random SmolVLM (see below)
    agentrt bench qa --device cuda --dtype bfloat16   # on a GPU (``gpu_mb``: the most it held)
    AGENTRT_BENCH_QA_MODEL=hf:models/SmolVLM2-256M agentrt bench qa   # any model spec

A synthetic moving scene goes into the model at ``stream_hz`` frames per
second of stream time (1 with --quick, 0.5 in the full run), as fast as the model takes them (time compressed:
30 minutes of stream take minutes). At 1, 5 and 30 minutes of stream it asks
a few questions and reads the process's memory. Figures (the issue's names):

- ``ttft_ms`` {"1min", "5min", "30min"}: median time to the first answer
  piece, in process (the served path adds ZeroMQ + HTTP, about 10-20 ms);
  ``ttft_cpu_ms`` beside it is the process's CPU time to it, what a quiet
  machine would see when other work shares the cores;
- ``tokens_per_s``: answer tokens per second after the first;
- ``rss_mb`` {"1min", "5min", "30min"}: resident memory of the process;
- ``ingest_fps``: frames per wall second into the model with the feature cache;
- ``ingest_fps_no_cache``: the same frames with the plain vision forward.

Without AGENTRT_BENCH_QA_MODEL the full run builds, offline, a random
SmolVLM whose language model has SmolLM2-135M's shape (the LM of
SmolVLM-256M: width 576, 30 layers) and a smaller SigLIP (6 layers, width
384, 256 px, 16 tokens a frame): timings depend on shapes, not on weights, and
a full SigLIP-B at 512 px (about 3 s a frame on 2 cores) would not fit a
time-compressed 30-minute stream. ``model`` in the result says what ran.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.bench.report import print_rows
from agentrt.runfiles import temporary_dir

__all__ = ["run", "print_table", "measure", "build_bench_checkpoint"]

log = logging.getLogger(__name__)

QUESTIONS = ("what is the robot holding?", "what changed in the last ten seconds?", "where is the red ball?")
CHECKPOINTS_MIN = (1, 5, 30)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# name -> (text config, vision config, scale_factor): random SmolVLM shapes built offline
SHAPES: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    "tiny": (dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2),
             dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=128, patch_size=16), 2),
    "smollm2-135m": (dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                          num_key_value_heads=3, vocab_size=49280, rope_theta=100000.0),
                     dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6,
                          image_size=256, patch_size=16), 4),
}


def run(quick: bool, device: str = "cpu", dtype: str = "float32") -> dict[str, Any]:
    """The benchmark's figures, the model on ``device`` in ``dtype``; ``quick`` finishes within about 60 s on 2
    cores."""
    spec = os.environ.get("AGENTRT_BENCH_QA_MODEL", "")
    if quick and "OMP_NUM_THREADS" not in os.environ:  # neither --threads nor the environment chose
        import torch

        # The tiny model's ops are too small for a second thread to pay, and on a busy machine two
        # threads spin-wait for each other: at load 4 on 2 cores the quick run took 73 s with 2 threads,
        # 27 s with 1 (14 s either way on a quiet machine).
        torch.set_num_threads(1)
    # an owned temp folder: removed at the end, and a killed run's is swept by the next start
    with temporary_dir("agentrt-bench-qa-") as tmp:
        shape = "tiny" if quick else "smollm2-135m"
        model_label = spec
        if not spec:
            spec = "hf:" + str(build_bench_checkpoint(tmp / shape, shape))
            model_label = f"random SmolVLM, shape {shape} (built offline)"
        # one frame every 2 s of stream in the full run: the window (about 70 frames) is full long before
        # 5 minutes either way, and 900 frames of the 135M-shaped model fit a shared 2-core machine
        return measure(spec, model_label=model_label, stream_hz=1.0 if quick else 0.5,
                       no_cache_frames=20 if quick else 30, device=device, dtype=dtype)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


def _frame(i: int, height: int = 240, width: int = 320) -> np.ndarray:
    from agentrt.pattern import synthetic_image

    return synthetic_image(i, height, width, 3)


def _ask(model: Any, question: str, max_new_tokens: int) -> tuple[float, int, float, float]:
    """(ms to the first token, tokens, seconds from first to last token, CPU ms to the first token)."""
    stream = model.answer_tokens(question, max_new_tokens=max_new_tokens) if hasattr(model, "answer_tokens") else \
        model.answer(question, max_new_tokens=max_new_tokens)
    t0, c0 = time.perf_counter(), time.process_time()
    first = last = None
    cpu_first = 0.0
    count = 0
    for _ in stream:
        last = time.perf_counter()
        if first is None:
            first, cpu_first = last, time.process_time()
        count += 1
    end = time.perf_counter()
    ttft = ((first if first is not None else end) - t0) * 1e3
    cpu = ((cpu_first if first is not None else time.process_time()) - c0) * 1e3
    return ttft, count, (last - first) if first and last else 0.0, cpu


def measure(spec: str, *, model_label: str, stream_hz: float, no_cache_frames: int,
            max_new_tokens: int = 16, device: str = "cpu", dtype: str = "float32") -> dict[str, Any]:
    from agentrt.engine.device import resolve_device, synchronize
    from policies.qa.node import load_qa_model

    model = load_qa_model(spec, device, dtype)
    on = resolve_device(device)
    result: dict[str, Any] = {"model": model_label, "model_spec": spec, "stream_hz": stream_hz,
                              "frame": "320x240 synthetic, moving", "max_new_tokens": max_new_tokens}
    ttft: dict[str, float] = {}
    ttft_cpu: dict[str, float] = {}  # CPU time of the process to the first token: what a quiet machine would see
    rss: dict[str, float] = {}
    gpu: dict[str, float] = {}  # the most GPU memory torch held so far (a GPU run only)
    held: dict[str, float] = {}
    tokens: dict[str, int] = {}
    rates: list[float] = []
    ingest_s = 0.0
    frames = 0
    for minutes in CHECKPOINTS_MIN:
        target = int(minutes * 60 * stream_hz)
        t0 = time.perf_counter()
        while frames < target:
            model.ingest(_frame(frames), int(frames * 1e9 / stream_hz))
            frames += 1
        synchronize(on)  # the frames' kernels finished, not only queued
        ingest_s += time.perf_counter() - t0
        _ask(model, QUESTIONS[0], 2)  # warm the question path once (first-call allocations)
        asked = [_ask(model, q, max_new_tokens) for q in QUESTIONS]
        key = f"{minutes}min"
        ttft[key] = statistics.median(a[0] for a in asked)
        log.info("%d min of stream: %d frames at %.1f fps, first token %.0f ms", minutes, frames,
                 frames / ingest_s, ttft[key])
        ttft_cpu[key] = statistics.median(a[3] for a in asked)
        rates += [(n - 1) / s for _, n, s, _ in asked if n > 1 and s > 0]
        rss[key] = _rss_mb()
        if on.type == "cuda":
            import torch

            gpu[key] = torch.cuda.max_memory_allocated(on) / 2**20
        memory = model.memory()
        held[key] = memory["bytes"] / 2**20
        tokens[key] = memory["tokens"]
    result.update(ttft_ms=ttft, ttft_cpu_ms=ttft_cpu, tokens_per_s=statistics.median(rates) if rates else float("nan"), rss_mb=rss,
                  ingest_fps=frames / ingest_s, frames=frames, held_mb=held, window_tokens=tokens,
                  rss_growth_1_to_30min=rss["30min"] / rss["1min"] - 1.0, **({"gpu_mb": gpu} if gpu else {}))
    stats = getattr(model, "stats", None)
    if callable(stats):
        result["vision_cache"] = stats()
    result.update(_no_cache_fps(spec, no_cache_frames, stream_hz, device, dtype))
    result["load_avg_1min_at_end"] = os.getloadavg()[0]  # other work on the machine skews every timing
    result["torch_threads"] = _torch_threads()
    return result


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _no_cache_fps(spec: str, frames: int, stream_hz: float, device: str, dtype: str) -> dict[str, Any]:
    """Ingest rate with and without the feature cache over the same fresh frames (HF models only)."""
    if not spec.startswith("hf:"):
        return {"ingest_fps_no_cache": float("nan"), "ingest_fps_same_frames": float("nan")}
    from agentrt.engine.device import synchronize
    from policies.qa.hf.vlm import HFVideoQAConfig, load_hf_videoqa

    out: dict[str, Any] = {}
    for key, use_cache in (("ingest_fps_same_frames", True), ("ingest_fps_no_cache", False)):
        model = load_hf_videoqa(spec[3:], device, dtype, config=HFVideoQAConfig(use_cache=use_cache))
        model.ingest(_frame(0), 0)  # warm-up
        synchronize(model.device)
        t0 = time.perf_counter()
        for i in range(1, frames + 1):
            model.ingest(_frame(i), int(i * 1e9 / stream_hz))
        synchronize(model.device)
        out[key] = frames / (time.perf_counter() - t0)
        del model
    return out


def build_bench_checkpoint(folder: Path, shape: str = "tiny", seed: int = 0) -> Path:
    """A random SmolVLM of a named shape saved like a downloaded checkpoint (tokenizer.json included)."""
    import json

    import torch
    import transformers as tf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tf.utils.logging.disable_progress_bar()
    folder.mkdir(parents=True, exist_ok=True)
    special = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<global-img>",
               "<image>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [q + " the arm the cube the ball moved left right up down" for q in QUESTIONS] * 10
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(folder / "tokenizer.json"))
    image_id = tok.token_to_id("<image>")
    assert image_id is not None  # a special token of the tokenizer just built
    text, vision, scale = SHAPES[shape]
    text = {"vocab_size": tok.get_vocab_size(), "max_position_embeddings": 8192, **text,
            "model_type": "llama", "eos_token_id": tok.token_to_id("<|endoftext|>")}
    config = tf.SmolVLMConfig(text_config=text, vision_config=vision, scale_factor=scale,
                              image_token_id=image_id)
    torch.manual_seed(seed)
    tf.SmolVLMForConditionalGeneration(config).eval().save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    return folder


def print_table(result: dict[str, Any]) -> None:
    keys = [f"{m}min" for m in CHECKPOINTS_MIN]
    print_rows(f"qa: {result['model']}, stream at {result['stream_hz']:g} fps (time compressed)",
               ["figure"] + keys,
               [["time to first token, ms"] + [result["ttft_ms"][k] for k in keys],
                ["  CPU time to it, ms"] + [result.get("ttft_cpu_ms", {}).get(k, float("nan")) for k in keys],
                ["RSS, MB"] + [result["rss_mb"][k] for k in keys],
                ["held by caches, MB"] + [result["held_mb"][k] for k in keys],
                ["KV window, tokens"] + [result["window_tokens"][k] for k in keys]])
    print_rows("qa: rates", ["figure", "value"],
               [["answer tokens / s", result["tokens_per_s"]],
                ["ingest fps (feature cache, whole run)", result["ingest_fps"]],
                ["ingest fps (feature cache, fresh frames)", result.get("ingest_fps_same_frames", float("nan"))],
                ["ingest fps (no cache, same frames)", result["ingest_fps_no_cache"]],
                ["RSS growth 1 -> 30 min", f"{100 * result['rss_growth_1_to_30min']:+.1f} %"]])
