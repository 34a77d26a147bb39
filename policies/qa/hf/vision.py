"""Vision for a Hugging Face VLM on a stream: preprocessing and the two families' towers.

Images are preprocessed here (resize + normalise with the checkpoint's
preprocessor_config.json), so no torchvision and no HF processor is needed.
SmolVLM's SigLIP tower runs through the engine's STC feature cache
(``ViTFeatureCache``: whole-frame skip, reference frames, per-layer token
reuse). Qwen2-VL's own tower (3-D patches, windowed attention in 2.5) is not a
CLIP/SigLIP layer stack, so it gets the cheap first level only: a frame that
barely changed reuses the last frame's features whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from agentrt.engine.vit_cache import VisionTower, ViTCacheConfig, ViTFeatureCache
from agentrt.errors import ModelError

if TYPE_CHECKING:  # annotations only: policies.qa.hf.vlm imports this module
    from policies.qa.hf.vlm import HFVideoQAConfig

__all__ = ["SmolVision", "QwenVision"]


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
        raise ModelError(f"preprocessor_config.json: expected 3 channel values, got {value!r}")
    return values[0], values[1], values[2]


def _smolvlm_tower(vision: Any) -> VisionTower:
    """SmolVLM's SigLIP variant as a VisionTower: its embeddings want a patch mask (all patches real here)."""
    embeddings, patch = vision.embeddings, int(vision.config.patch_size)

    def embed(pixels: torch.Tensor) -> torch.Tensor:
        B, _, H, W = pixels.shape  # batch, channels, height, width
        mask = torch.ones(B, H // patch, W // patch, dtype=torch.bool, device=pixels.device)
        return embeddings(pixels, patch_attention_mask=mask)

    return VisionTower(embed=embed, layers=list(vision.encoder.layers), finish=vision.post_layernorm)


class SmolVision:
    """Frame -> LM-space token grid [h, w, C]: SigLIP (through the feature cache) -> pixel shuffle + projection."""

    def __init__(self, model: Any, folder: Path, config: HFVideoQAConfig, device: torch.device) -> None:
        inner = model.model
        self.inner, self.device = inner, device
        self.dtype = next(model.parameters()).dtype  # bfloat16 weights want bfloat16 pixels
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
        pixels = self.pre(image, self.size, self.size, self.device)[None].to(self.dtype)  # [1, 3, S, S]
        if self.use_cache:
            hidden = self.cache(pixels)  # [1, N, Cv]
            tokens = self.inner.connector(hidden)[0]
        else:  # the plain path a checkpoint's own forward takes
            tokens = self.inner.get_image_features(pixel_values=pixels[None]).pooler_output[0]
        return tokens.reshape(*self.grid, -1)

    def stats(self) -> dict[str, float]:
        return self.cache.stats.as_dict()


class QwenVision:
    """Frame -> LM-space token grid [h, w, C] via the model's own tower; unchanged frames reuse features."""

    def __init__(self, model: Any, folder: Path, config: HFVideoQAConfig, device: torch.device) -> None:
        self.inner, self.device = model.model, device
        self.dtype = next(model.parameters()).dtype  # bfloat16 weights want bfloat16 patches
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
        flat = x.reshape(gh * gw, 3 * self.tps * p * p).to(self.dtype)
        grid_thw = torch.tensor([[1, gh, gw]], device=self.device)
        tokens = self.inner.get_image_features(pixel_values=flat, image_grid_thw=grid_thw).pooler_output[0]
        tokens = tokens.reshape(gh // m, gw // m, -1)
        self._last = (pixels, tokens)
        return tokens

    def stats(self) -> dict[str, float]:
        return {"frames": float(self.frames), "frame_skip_rate": self.skipped / self.frames if self.frames else 0.0}
