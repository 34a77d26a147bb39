"""Hugging Face VLMs behind the VideoQA contract: SmolVLM / SmolVLM2 (Idefics3) and Qwen2-VL / Qwen2.5-VL.

``load_hf_videoqa(path, device)`` loads a checkpoint from a local folder (never
the hub) and returns a `HFVideoQA` that streams frames into the engine:

- vision: SmolVLM's SigLIP tower runs through the engine's STC feature cache
  (``ViTFeatureCache``: whole-frame skip, reference frames, per-layer token
  reuse). Qwen2-VL's own tower (3-D patches, windowed attention in 2.5) is not
  a CLIP/SigLIP layer stack, so it gets the cheap first level only: a frame
  that barely changed reuses the last frame's features whole.
- slow-fast tokens: every frame is appended to the LM as a few *fast* tokens
  (its grid pooled by ``build_slowfast`` to ``fast_tokens``); at question time
  the newest frame goes in at full resolution (*slow*), next to the question.
- the LM's KV cache is a bounded streaming window (`_KVWindow`): a prompt in
  the sinks, whole frames behind it, the oldest frames evicted first. Kept keys
  are re-rotated by the positions removed, as ``StreamingKVCache`` does. For
  Qwen2-VL's M-RoPE this is exact too: every kept row's (t, h, w) position
  moves by the same amount, and rotary frequency j turns by shift x inv_freq[j]
  whichever of t, h or w it reads, so one rotation renumbers all three (a test
  checks it against a full prefill of the kept window).
- a question reuses the cached prefix; the cache is cropped back afterwards.

Images are preprocessed here (resize + normalise with the checkpoint's
preprocessor_config.json), so no torchvision and no HF processor is needed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agentrt.engine.decoder import rotate_with
from agentrt.engine.hf import HFCausalLMRunner
from agentrt.engine.slowfast import SlowFastConfig, build_slowfast
from agentrt.engine.vit_cache import VisionTower, ViTCacheConfig, ViTFeatureCache
from agentrt.errors import ConfigError, ModelError

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
            raise ConfigError(f"HFVideoQAConfig.window_tokens: expected >= 8, given {self.window_tokens}")
        if self.fast_tokens < 1:
            raise ConfigError(f"HFVideoQAConfig.fast_tokens: expected >= 1, given {self.fast_tokens}")
        if self.slow_frames not in (0, 1):
            raise ConfigError(f"HFVideoQAConfig.slow_frames: expected 0 or 1, given {self.slow_frames}")
        ViTCacheConfig(self.vit_interval, self.vit_ratio, self.skip_threshold)  # validates those three
        if self.qwen_max_pixels < 28 * 28:
            raise ConfigError(f"HFVideoQAConfig.qwen_max_pixels: expected >= 784, given {self.qwen_max_pixels}")


# ---- the LM side: a sequence builder and the bounded KV window -------------------------------------


@dataclass
class _Chunk:
    """Inputs of one piece of the LM sequence: embeddings [T, C], positions [3, T] from 0, span."""

    embeds: torch.Tensor
    positions: torch.Tensor
    span: int  # positions the chunk occupies; the next chunk starts this far on

    @property
    def rows(self) -> int:
        return int(self.embeds.shape[0])


class _Builder:
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

    def chunk(self) -> _Chunk:
        return _Chunk(torch.cat(self.embeds), torch.cat(self.positions, dim=1), self.span)


class _TextLM(nn.Module):
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


class _KVWindow:
    """The LM's KV cache over the stream: a prompt (sinks), then whole frames, at most sinks + window rows."""

    def __init__(self, lm: _TextLM, window_tokens: int, keep_transcript: bool) -> None:
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
        self.transcript: list[_Chunk] = []  # sinks + frames' inputs, only with keep_transcript
        self.next_pos = 0
        self.evicted_rows = 0
        self.tail: _Chunk | None = None  # cached after the frames, replaced by the next append (the slow frame)

    @property
    def length(self) -> int:
        return self.runner.cache_length(self.cache)

    @property
    def tail_span(self) -> int:
        return self.tail.span if self.tail is not None else 0

    def set_tail(self, chunk: _Chunk | None) -> None:
        """Cache ``chunk`` after the frames without making it part of the stream; the next append drops it."""
        self._drop_tail()
        if chunk is not None:
            self.forward(chunk)
            self.tail = chunk

    def _drop_tail(self) -> None:
        if self.tail is not None:
            self.runner.crop(self.cache, self.length - self.tail.rows)
            self.tail = None

    def forward(self, chunk: _Chunk, offset: int = 0) -> torch.Tensor:
        """Run a chunk at the next positions (+ offset); the cache grows by it. Returns the last logits [1, V]."""
        pos = (chunk.positions + self.next_pos + offset).to(self.runner.device)
        return self.runner.forward(chunk.embeds[None], pos, self.cache)[0]

    def append(self, chunk: _Chunk, *, sink: bool = False) -> None:
        if not sink and chunk.rows > self.window_tokens:
            raise ModelError(f"a frame of {chunk.rows} LM tokens does not fit window_tokens={self.window_tokens}: "
                             "lower fast_tokens or widen the window")
        self._drop_tail()
        if not sink:
            self._make_room(chunk.rows)
        if self.keep_transcript:
            self.transcript.append(_Chunk(chunk.embeds, chunk.positions + self.next_pos, chunk.span))
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
                _Chunk(c.embeds, c.positions - drop_pos, c.span) for c in kept]

    def kv_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for layer in self.cache.layers
                   for t in (layer.keys, layer.values) if t is not None)


# ---- vision: preprocessing and the two families' towers ------------------------------------------


@dataclass
class _Preprocess:
    """What preprocessor_config.json says about resizing and normalising (defaults where it is silent)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale: float = 1 / 255

    @classmethod
    def read(cls, folder: Path, default_mean: float | list[float], default_std: float | list[float]) -> _Preprocess:
        path = folder / "preprocessor_config.json"
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ModelError(f"{path}: not readable JSON ({exc}); restore it from the checkpoint") from None
        mean, std = data.get("image_mean", default_mean), data.get("image_std", default_std)
        return cls(_three(mean), _three(std), float(data.get("rescale_factor", 1 / 255)))

    def __call__(self, image: np.ndarray, height: int, width: int, device: torch.device) -> torch.Tensor:
        """RGB uint8 [H, W, 3] -> normalised float [3, height, width] (bicubic resize, like the HF processors)."""
        x = torch.from_numpy(np.array(image[..., :3])).to(device).permute(2, 0, 1)[None].float()
        if x.shape[-2:] != (height, width):
            x = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 255)
        mean = torch.tensor(self.mean, device=device)[:, None, None]
        std = torch.tensor(self.std, device=device)[:, None, None]
        return ((x[0] * self.rescale) - mean) / std


def _three(value: Any) -> tuple[float, float, float]:
    """A per-channel value from preprocessor_config.json: one number or a list of three."""
    values = [float(x) for x in (value if isinstance(value, list) else [value] * 3)]
    if len(values) != 3:
        raise ModelError(f"preprocessor_config.json: expected 3 channel values, given {value!r}")
    return values[0], values[1], values[2]


def _smolvlm_tower(vision: Any) -> VisionTower:
    """SmolVLM's SigLIP variant as a VisionTower: its embeddings want a patch mask (all patches real here)."""
    embeddings, patch = vision.embeddings, int(vision.config.patch_size)

    def embed(pixels: torch.Tensor) -> torch.Tensor:
        B, _, H, W = pixels.shape  # batch, channels, height, width
        mask = torch.ones(B, H // patch, W // patch, dtype=torch.bool, device=pixels.device)
        return embeddings(pixels, patch_attention_mask=mask)

    return VisionTower(embed=embed, layers=list(vision.encoder.layers), finish=vision.post_layernorm)


class _SmolVision:
    """Frame -> LM-space token grid [h, w, C]: SigLIP (through the feature cache) -> pixel shuffle + projection."""

    def __init__(self, model: Any, folder: Path, config: HFVideoQAConfig, device: torch.device) -> None:
        inner = model.model
        self.inner, self.device = inner, device
        self.size = int(inner.config.vision_config.image_size)
        self.pre = _Preprocess.read(folder, 0.5, 0.5)
        self.tower = _smolvlm_tower(inner.vision_model)
        self.cache = ViTFeatureCache(self.tower, ViTCacheConfig(config.vit_interval, config.vit_ratio,
                                                                config.skip_threshold))
        self.use_cache = config.use_cache
        side = self.size // int(inner.config.vision_config.patch_size) // int(inner.config.scale_factor)
        self.grid = (side, side)

    def reset(self) -> None:
        self.cache.reset()

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> torch.Tensor:
        pixels = self.pre(image, self.size, self.size, self.device)[None]  # [1, 3, S, S]
        if self.use_cache:
            hidden = self.cache(pixels)  # [1, N, Cv]
            tokens = self.inner.connector(hidden)[0]
        else:  # the plain path a checkpoint's own forward takes
            tokens = self.inner.get_image_features(pixel_values=pixels[None]).pooler_output[0]
        return tokens.reshape(*self.grid, -1)

    def stats(self) -> dict[str, float]:
        return self.cache.stats.as_dict()


class _QwenVision:
    """Frame -> LM-space token grid [h, w, C] via the model's own tower; unchanged frames reuse features."""

    def __init__(self, model: Any, folder: Path, config: HFVideoQAConfig, device: torch.device) -> None:
        self.inner, self.device = model.model, device
        vc = self.inner.config.vision_config
        self.patch, self.merge, self.tps = int(vc.patch_size), int(vc.spatial_merge_size), int(vc.temporal_patch_size)
        clip_mean, clip_std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
        self.pre = _Preprocess.read(folder, clip_mean, clip_std)
        self.max_pixels = config.qwen_max_pixels
        self.skip = config.skip_threshold if config.use_cache else 0.0
        self.frames = self.skipped = 0
        self.reset()

    def reset(self) -> None:
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (pixels, tokens) of the last encoded frame
        self.frames = self.skipped = 0

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        """Qwen's smart_resize: sides multiples of patch x merge, area at most max_pixels, aspect kept."""
        f = self.patch * self.merge
        h, w = max(f, round(height / f) * f), max(f, round(width / f) * f)
        if h * w > self.max_pixels:
            beta = (height * width / self.max_pixels) ** 0.5
            h, w = max(f, int(height / beta // f) * f), max(f, int(width / beta // f) * f)
        return h, w

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> torch.Tensor:
        self.frames += 1
        H, W = self.size_for(image.shape[0], image.shape[1])
        pixels = self.pre(image, H, W, self.device)  # [3, H, W]
        last = self._last
        if self.skip > 0 and last is not None and last[0].shape == pixels.shape:
            change = (pixels - last[0]).abs().mean() / last[0].abs().mean().clamp_min(1e-12)
            if change < self.skip:
                self.skipped += 1
                return last[1]
        gh, gw, m, p = H // self.patch, W // self.patch, self.merge, self.patch
        # the processor's patch order: merge windows contiguous, each patch (C, T, p, p) flattened
        x = pixels.reshape(3, gh // m, m, p, gw // m, m, p).permute(1, 4, 2, 5, 0, 3, 6)
        x = x[:, :, :, :, :, None].expand(*x.shape[:5], self.tps, p, p)
        flat = x.reshape(gh * gw, 3 * self.tps * p * p)
        grid_thw = torch.tensor([[1, gh, gw]], device=self.device)
        tokens = self.inner.get_image_features(pixel_values=flat, image_grid_thw=grid_thw).pooler_output[0]
        tokens = tokens.reshape(gh // m, gw // m, -1)
        self._last = (pixels, tokens)
        return tokens

    def stats(self) -> dict[str, float]:
        return {"frames": float(self.frames), "frame_skip_rate": self.skipped / self.frames if self.frames else 0.0}


# ---- the model behind the VideoQA contract ---------------------------------------------------------


class HFVideoQA:
    """A loaded Hugging Face VLM that watches a stream (see the module docstring)."""

    def __init__(self, model: Any, tokenizer: Any, family: str, folder: Path, config: HFVideoQAConfig,
                 device: torch.device) -> None:
        self.name = f"hf:{folder.name}"
        self.model, self.tokenizer, self.family, self.config, self.device = model, tokenizer, family, config, device
        mrope = family == "qwen"
        self.mrope = mrope
        lm = model.model.language_model if mrope else model.model.text_model
        self.lm = _TextLM(lm, model.lm_head, mrope)
        self.embed_tokens = model.get_input_embeddings()
        self.vision: _SmolVision | _QwenVision = (
            _QwenVision(model, folder, config, device) if mrope else _SmolVision(model, folder, config, device))
        self.window = _KVWindow(self.lm, config.window_tokens, config.keep_transcript)
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
        b = _Builder(self.mrope)
        b.text(self._embed(self._ids["prompt"]))
        with torch.no_grad():
            self.window.append(b.chunk(), sink=True)

    @torch.no_grad()
    def ingest(self, image: np.ndarray, t_ns: int) -> None:
        if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
            raise ModelError(f"ingest: expected an RGB uint8 image (H, W, 3), given {image.dtype} {image.shape}")
        self._close_open()
        grid = self.vision(image)  # [h, w, C]
        self._last_grid = grid
        self.frames += 1
        self.last_t_ns = t_ns
        self.window.append(self._frame_chunk(self._fast(grid)))
        if self.config.prefill_slow:
            self.window.set_tail(self._slow_chunk())

    def answer(self, question: str, max_new_tokens: int = 32) -> Iterator[str]:
        ids: list[int] = []
        text = ""
        for token in self.answer_tokens(question, max_new_tokens):
            ids.append(token)
            full = self.tokenizer.decode(ids, skip_special_tokens=True)
            if full.endswith("\ufffd"):
                continue  # half of a multi-byte character: wait for the rest
            if len(full) > len(text) and full.startswith(text):
                yield full[len(text):]
            text = full

    def memory(self) -> dict[str, int]:
        held = self.window.kv_bytes()
        if self._last_grid is not None:
            held += self._last_grid.numel() * self._last_grid.element_size()
        held += _tensor_bytes(getattr(getattr(self.vision, "cache", None), "_reference", None))
        held += _tensor_bytes(getattr(self.vision, "_last", None))
        return {"frames": self.frames, "tokens": self.window.length, "bytes": held}

    # -- tokens: the streaming path and the plain reference beside it --

    def answer_tokens(self, question: str, max_new_tokens: int = 32) -> Iterator[int]:
        """Greedy answer token ids, reusing the cached stream; the cache is cropped back when done."""
        self._close_open()
        generator = self._answer_tokens(question, max_new_tokens)
        self._open = generator
        return generator

    @torch.no_grad()
    def _answer_tokens(self, question: str, max_new_tokens: int) -> Iterator[int]:
        window = self.window
        keep = window.length
        if window.tail is not None:  # the newest frame is cached already: only the text runs
            chunk, offset = self._text_chunk(question), window.tail_span
        else:
            chunk, offset = _join(self._slow_chunk(), self._text_chunk(question)), 0
        try:
            logits = window.forward(chunk, offset)[-1]
            for step in range(max_new_tokens):
                token = int(logits.argmax())
                if token in self.stop_ids:
                    return
                yield token
                if step + 1 < max_new_tokens:
                    nxt = _Chunk(self._embed([token]), torch.zeros(3, 1, dtype=torch.long), 1)
                    logits = window.forward(nxt, offset=offset + chunk.span + step)[-1]
        finally:
            window.runner.crop(window.cache, keep)

    @torch.no_grad()
    def reference_tokens(self, question: str, max_new_tokens: int = 32) -> list[int]:
        """The same answer from a full prefill of the kept window + question, no KV cache (needs keep_transcript)."""
        if not self.config.keep_transcript:
            raise ModelError("reference_tokens needs HFVideoQAConfig(keep_transcript=True)")
        window = self.window
        q = _join(self._slow_chunk(), self._text_chunk(question))
        embeds = torch.cat([c.embeds for c in window.transcript] + [q.embeds])
        positions = torch.cat([c.positions for c in window.transcript] + [q.positions + window.next_pos], dim=1)
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

    def _frame_chunk(self, grid: torch.Tensor) -> _Chunk:
        b = _Builder(self.mrope)
        b.text(self._embed(self._ids["frame_open"]))
        b.image(grid)
        b.text(self._embed(self._ids["frame_close"]))
        return b.chunk()

    def _slow_chunk(self) -> _Chunk | None:
        """The newest frame at full resolution, as the question's preamble; None before any frame."""
        if not self.config.slow_frames or self._last_grid is None:
            return None
        b = _Builder(self.mrope)
        b.text(self._embed(self._ids["question_open"]))
        b.text(self._embed(self._ids["frame_open"]))
        b.image(self._last_grid)
        b.text(self._embed(self._ids["frame_close"]))
        return b.chunk()

    def _text_chunk(self, question: str) -> _Chunk:
        b = _Builder(self.mrope)
        text = " " + question.strip() if self.family == "smolvlm" else question.strip()
        b.text(self._embed(self._encode([text])))
        b.text(self._embed(self._ids["question_close"]))
        return b.chunk()


def _join(first: _Chunk | None, second: _Chunk) -> _Chunk:
    """Two chunks as one: the second's positions follow the first's span."""
    if first is None:
        return second
    return _Chunk(torch.cat([first.embeds, second.embeds]),
                  torch.cat([first.positions, second.positions + first.span], dim=1), first.span + second.span)


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


def load_hf_videoqa(path: str, device: str = "cpu", config: HFVideoQAConfig | None = None) -> HFVideoQA:
    """A SmolVLM / SmolVLM2 / Qwen2-VL / Qwen2.5-VL checkpoint from a local folder, never the hub."""
    folder = Path(path).expanduser()
    hint = "give the folder of a local Hugging Face checkpoint (config.json, *.safetensors, tokenizer.json)"
    if not folder.is_dir():
        raise ModelError(f"hf:{path}: no such folder; {hint}")
    for name in ("config.json", "tokenizer.json"):
        if not (folder / name).is_file():
            raise ModelError(f"hf:{path}: {name} is missing; {hint}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: no CUDA device here; use device cpu")
    import transformers
    from tokenizers import Tokenizer

    transformers.utils.logging.disable_progress_bar()  # a progress bar per load clutters `agentrt ask` output

    try:
        hf_config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"hf:{path}: config.json not understood ({_first_line(exc)})") from None
    model_type = str(getattr(hf_config, "model_type", ""))
    if model_type not in FAMILIES:
        raise ModelError(f"hf:{path}: model_type {model_type!r} is not supported; expected one of "
                         f"{', '.join(FAMILIES)} (SmolVLM, SmolVLM2, Qwen2-VL, Qwen2.5-VL)")
    family, class_name = FAMILIES[model_type]
    try:
        model = getattr(transformers, class_name).from_pretrained(str(folder), local_files_only=True,
                                                                  dtype=torch.float32)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # torch, safetensors and transformers raise many kinds: one line for all
        raise ModelError(f"hf:{path}: could not load {class_name} ({_first_line(exc)})") from None
    target = torch.device(device)
    model = model.to(target).eval()
    log.info("loaded %s (%s) from %s on %s", class_name, model_type, folder, target)
    return HFVideoQA(model, tokenizer, family, folder, config or HFVideoQAConfig(), target)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
