"""Hugging Face VLMs behind the VideoQA contract: SmolVLM / SmolVLM2 (Idefics3) and Qwen2-VL / Qwen2.5-VL.

``load_hf_videoqa(path, device, dtype)`` loads a checkpoint from a local folder (never
the hub) and returns a `HFVideoQA` that streams frames into the engine:

- vision: preprocessing and the two families' towers (`policies.qa.hf.vision`).
- slow-fast tokens: every frame is appended to the LM as a few *fast* tokens
  (its grid pooled by ``build_slowfast`` to ``fast_tokens``); at question time
  the newest frame goes in at full resolution (*slow*), next to the question.
- the LM's KV cache is the engine's bounded streaming window (`StreamingKVCache`) with 3-D (M-RoPE) positions
  (`policies.qa.hf.window`): a prompt in the sinks, whole frames behind it, the
  oldest frames evicted first.
- a question reuses the cached prefix; the cache is cropped back afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentrt.engine.device import Placement
from agentrt.engine.slowfast import SlowFastConfig, build_slowfast
from agentrt.engine.vit_cache import ViTCacheConfig
from agentrt.errors import ConfigError, ModelError, first_line
from policies.qa.hf.reference import HFReferenceQA
from policies.qa.hf.vision import QwenVision, SmolVision
from policies.qa.hf.window import Builder, Chunk, KVWindow, TextLM, join, text_deltas

__all__ = ["HFVideoQAConfig", "HFVideoQA", "load_hf_videoqa", "FAMILIES"]

log = logging.getLogger(__name__)

# model_type in config.json -> (family, transformers class name). The one dispatch table.
FAMILIES: dict[str, tuple[str, str]] = {
    "smolvlm": ("smolvlm", "SmolVLMForConditionalGeneration"),
    "idefics3": ("smolvlm", "Idefics3ForConditionalGeneration"),  # SmolVLM v1 checkpoints
    "qwen2_vl": ("qwen", "Qwen2VLForConditionalGeneration"),
    "qwen2_5_vl": ("qwen", "Qwen2_5_VLForConditionalGeneration"),
}

# Prompt pieces per family: literal text, or a special token used only where the tokenizer has it.
_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "smolvlm": {
        "prompt": ["<|im_start|>", "User: You are watching a live video. Frames follow, oldest first."],
        "frame_open": ["<fake_token_around_image>", "<global-img>"],
        "frame_close": ["<fake_token_around_image>"],
        "question_open": [" The newest frame: "],
        "question_close": ["<end_of_utterance>", "\nAssistant:"],
        "stop": ["<end_of_utterance>", "<|im_end|>"],
    },
    "qwen": {
        "prompt": ["<|im_start|>", "system\nYou are watching a live video. Frames follow, oldest first.",
                   "<|im_end|>", "\n", "<|im_start|>", "user\n"],
        "frame_open": ["<|vision_start|>"],
        "frame_close": ["<|vision_end|>"],
        "question_open": ["The newest frame: "],
        "question_close": ["<|im_end|>", "\n", "<|im_start|>", "assistant\n"],
        "stop": ["<|im_end|>", "<|endoftext|>"],
    },
}


@dataclass
class HFVideoQAConfig:
    window_tokens: int = 512  # LM rows kept behind the prompt (sinks); whole frames are evicted
    fast_tokens: int = 4  # LM tokens per frame in the stream (its grid pooled down)
    slow_frames: int = 1  # newest frames added at full resolution with a question (0 or 1)
    vit_interval: int = 4  # SmolVLM feature cache: a reference frame every N encoded frames
    vit_ratio: float = 0.25  # tokens recomputed per layer; 1.0 = exact, no reuse
    skip_threshold: float = 0.002  # whole-frame skip below this relative mean |Δpixel|; 0 = never
    use_cache: bool = True  # False: the plain vision forward on every frame (the reference)
    prefill_slow: bool = True  # run the newest frame's slow tokens at ingest, so a question only runs its text
    qwen_max_pixels: int = 224 * 224  # Qwen2-VL frame area cap (tokens per frame = pixels / 28²)
    keep_transcript: bool = False  # keep each chunk's inputs for `reference_answer` (tests)

    def __post_init__(self) -> None:
        if self.window_tokens < 8:
            raise ConfigError(f"HFVideoQAConfig.window_tokens: expected >= 8, got {self.window_tokens}")
        if self.fast_tokens < 1:
            raise ConfigError(f"HFVideoQAConfig.fast_tokens: expected >= 1, got {self.fast_tokens}")
        if self.slow_frames not in (0, 1):
            raise ConfigError(f"HFVideoQAConfig.slow_frames: expected 0 or 1, got {self.slow_frames}")
        ViTCacheConfig(self.vit_interval, self.vit_ratio, self.skip_threshold)  # validates those three
        if self.qwen_max_pixels < 28 * 28:
            raise ConfigError(f"HFVideoQAConfig.qwen_max_pixels: expected >= 784, got {self.qwen_max_pixels}")


class HFVideoQA:
    """A loaded Hugging Face VLM that watches a stream (see the module docstring)."""

    def __init__(self, model: Any, tokenizer: Any, family: str, folder: Path, config: HFVideoQAConfig,
                 device: torch.device) -> None:
        self.name = f"hf:{folder.name}"
        self.folder = folder
        self.model, self.tokenizer, self.family, self.config, self.device = model, tokenizer, family, config, device
        mrope = family == "qwen"
        self.mrope = mrope
        lm = model.model.language_model if mrope else model.model.text_model
        self.lm = TextLM(lm, model.lm_head, mrope)
        self.embed_tokens = model.get_input_embeddings()
        self.vision: SmolVision | QwenVision = (
            QwenVision(model, folder, config, device) if mrope else SmolVision(model, folder, config, device))
        self.window = KVWindow(self.lm, config.window_tokens, config.keep_transcript)
        template = _TEMPLATES[family]
        self._ids = {key: self._encode(pieces) for key, pieces in template.items() if key != "stop"}
        eos = getattr(lm.config, "eos_token_id", None) or getattr(model.config, "eos_token_id", None)
        stops = [self.tokenizer.token_to_id(p) for p in template["stop"]]
        stops += eos if isinstance(eos, list) else [eos]
        self.stop_ids = {int(t) for t in stops if t is not None}
        self._open: Iterator[int] | None = None  # an answer still being streamed (closed before the next call)
        self.reset()

    # -- the contract --

    def reset(self) -> None:
        self._close_open()
        self.vision.reset()
        self.window.reset()
        self.frames = 0
        self.last_t_ns = 0
        self._last_grid: torch.Tensor | None = None  # the newest frame's full-resolution tokens [h, w, C]
        b = Builder(self.mrope)
        b.text(self._embed(self._ids["prompt"]))
        with torch.no_grad():
            self.window.append(b.chunk(), sink=True)

    @torch.no_grad()
    def ingest(self, image: np.ndarray, t_ns: int) -> None:
        if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
            raise ModelError(f"ingest: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        self._close_open()
        grid = self.vision(image)  # [h, w, C]
        self._last_grid = grid
        self.frames += 1
        self.last_t_ns = t_ns
        self.window.append(self._frame_chunk(self._fast(grid)))
        if self.config.prefill_slow:
            self.window.set_tail(self._slow_chunk())

    def answer(self, question: str, *, max_new_tokens: int = 32) -> Iterator[str]:
        tokens = self.answer_tokens(question, max_new_tokens=max_new_tokens)
        return text_deltas(tokens, lambda ids: str(self.tokenizer.decode(ids, skip_special_tokens=True)))

    def memory(self) -> dict[str, int]:
        held = self.window.kv_bytes()
        if self._last_grid is not None:
            held += self._last_grid.numel() * self._last_grid.element_size()
        held += _tensor_bytes(getattr(getattr(self.vision, "cache", None), "_reference", None))
        held += _tensor_bytes(getattr(self.vision, "_last", None))
        return {"frames": self.frames, "tokens": self.window.length, "bytes": held}

    # -- tokens: the streaming path and the plain reference beside it --

    def answer_tokens(self, question: str, *, max_new_tokens: int = 32) -> Iterator[int]:
        """Greedy answer token ids, reusing the cached stream; the cache is cropped back when done."""
        self._close_open()
        generator = self._answer_tokens(question, max_new_tokens)
        self._open = generator
        return generator

    def _answer_tokens(self, question: str, max_new_tokens: int) -> Iterator[int]:
        if self.window.tail is not None:  # the newest frame is cached already: only the text runs
            chunk = self._text_chunk(question)
        else:
            chunk = join(self._slow_chunk(), self._text_chunk(question))
        return self.window.answer(chunk, max_new_tokens=max_new_tokens, stop_ids=self.stop_ids)

    @torch.no_grad()
    def reference_tokens(self, question: str, max_new_tokens: int = 32) -> list[int]:
        """The same answer from a full prefill of the kept window + question, no KV cache (needs keep_transcript)."""
        if not self.config.keep_transcript:
            raise ModelError("reference_tokens needs HFVideoQAConfig(keep_transcript=True)")
        window = self.window
        q = join(self._slow_chunk(), self._text_chunk(question))
        kept, kept_positions = window.transcript()
        embeds = torch.cat([kept, q.embeds])
        positions = torch.cat([kept_positions, q.positions + window.next_pos], dim=1)
        out: list[int] = []
        nxt = window.next_pos + q.span
        for _ in range(max_new_tokens):
            logits = self.lm(embeds[None].to(self.device), positions[None].to(self.device), use_cache=False).logits
            token = int(logits[0, -1].argmax())
            if token in self.stop_ids:
                break
            out.append(token)
            embeds = torch.cat([embeds, self._embed([token])])
            positions = torch.cat([positions, torch.full((3, 1), nxt, dtype=torch.long)], dim=1)
            nxt += 1
        return out

    def stats(self) -> dict[str, float]:
        return {**self.vision.stats(), "evicted_tokens": float(self.window.evicted_rows)}

    # -- pieces --

    def _close_open(self) -> None:
        if self._open is not None:
            close = getattr(self._open, "close", None)
            if close is not None:
                close()  # runs the answer's `finally`: the cache is cropped back
            self._open = None

    def _encode(self, pieces: list[str]) -> list[int]:
        ids: list[int] = []
        for piece in pieces:
            if piece.startswith("<") and piece.endswith(">") and " " not in piece:
                token = self.tokenizer.token_to_id(piece)
                if token is not None:  # a special token this checkpoint lacks is left out
                    ids.append(int(token))
            else:
                ids.extend(self.tokenizer.encode(piece, add_special_tokens=False).ids)
        return ids

    def _embed(self, ids: list[int]) -> torch.Tensor:
        C = self.embed_tokens.weight.shape[1]
        if not ids:
            return torch.zeros(0, C, device=self.device)
        return self.embed_tokens(torch.tensor(ids, device=self.device))

    def _fast(self, grid: torch.Tensor) -> torch.Tensor:
        """A frame's fast tokens: its grid average-pooled to at most ``fast_tokens`` (engine slow-fast plan)."""
        h, w, C = grid.shape
        if h * w <= self.config.fast_tokens:
            return grid
        fast = build_slowfast(grid[None], SlowFastConfig(token_budget=self.config.fast_tokens, slow_frames=0,
                                                         temporal_strides=(1,), min_fast_grid=1))
        fh, fw = fast.plan.fast_grid
        return fast.tokens.reshape(fh, fw, C)

    def _frame_chunk(self, grid: torch.Tensor) -> Chunk:
        b = Builder(self.mrope)
        b.text(self._embed(self._ids["frame_open"]))
        b.image(grid)
        b.text(self._embed(self._ids["frame_close"]))
        return b.chunk()

    def _slow_chunk(self) -> Chunk | None:
        """The newest frame at full resolution, as the question's preamble; None before any frame."""
        if not self.config.slow_frames or self._last_grid is None:
            return None
        b = Builder(self.mrope)
        b.text(self._embed(self._ids["question_open"]))
        b.text(self._embed(self._ids["frame_open"]))
        b.image(self._last_grid)
        b.text(self._embed(self._ids["frame_close"]))
        return b.chunk()

    def _text_chunk(self, question: str) -> Chunk:
        b = Builder(self.mrope)
        text = " " + question.strip() if self.family == "smolvlm" else question.strip()
        b.text(self._embed(self._encode([text])))
        b.text(self._embed(self._ids["question_close"]))
        return b.chunk()


def _tensor_bytes(obj: Any) -> int:
    """Bytes held by the tensors in ``obj`` (a tensor, a tuple / list of them, or an object with a ``states`` list)."""
    if obj is None:
        return 0
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, tuple | list):
        return sum(_tensor_bytes(x) for x in obj)
    states = getattr(obj, "states", None)
    if states is not None:
        return sum(_tensor_bytes(list(vars(s).values())) for s in states)
    return 0


def load_hf_videoqa(path: str, device: str = "auto", dtype: str = "float32", *,
                    config: HFVideoQAConfig | None = None, reference: bool = False) -> HFVideoQA | HFReferenceQA:
    """A SmolVLM / SmolVLM2 / Qwen2-VL / Qwen2.5-VL checkpoint from a local folder, never the hub, on ``device``
    in ``dtype`` (``agentrt.engine.device``). ``reference``: the newest frame through the checkpoint's own
    processor and chat template (`policies.qa.hf.reference`) instead of the streaming window."""
    folder = Path(path).expanduser()
    hint = "give the folder of a local Hugging Face checkpoint (config.json, *.safetensors, tokenizer.json)"
    if not folder.is_dir():
        raise ModelError(f"hf:{path}: no such folder; {hint}")
    for name in ("config.json", "tokenizer.json"):
        if not (folder / name).is_file():
            raise ModelError(f"hf:{path}: {name} is missing; {hint}")
    placement = Placement.parse(device, dtype)  # one line for a device that is not here, before any loading
    import transformers
    from tokenizers import Tokenizer

    transformers.utils.logging.disable_progress_bar()  # a progress bar per load clutters `agentrt ask` output

    try:
        hf_config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"hf:{path}: config.json not understood ({first_line(exc)})") from None
    model_type = str(getattr(hf_config, "model_type", ""))
    if model_type not in FAMILIES:
        raise ModelError(f"hf:{path}: model_type {model_type!r} is not supported; expected one of "
                         f"{', '.join(FAMILIES)} (SmolVLM, SmolVLM2, Qwen2-VL, Qwen2.5-VL)")
    family, class_name = FAMILIES[model_type]
    try:
        model = getattr(transformers, class_name).from_pretrained(str(folder), local_files_only=True,
                                                                  dtype=placement.dtype)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # torch, safetensors and transformers raise many kinds: one line for all
        raise ModelError(f"hf:{path}: could not load {class_name} ({first_line(exc)})") from None
    target = placement.device
    model = model.to(target).eval()
    log.info("loaded %s (%s) from %s on %s", class_name, model_type, folder, target)
    qa = HFVideoQA(model, tokenizer, family, folder, config or HFVideoQAConfig(), target)
    return HFReferenceQA(qa) if reference else qa

