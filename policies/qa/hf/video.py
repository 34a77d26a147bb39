"""Video reference for Qwen2-VL / Qwen2.5-VL: N frames and a question, fed as the authors feed a video.

The frames are resized to one size (``smart_resize`` with the image
processor's min / max pixels, its resampling), rescaled and normalised, padded
to a multiple of ``temporal_patch_size`` by repeating the last frame and cut
into 3-D patches laid out exactly as transformers' ``Qwen2VLVideoProcessor``
lays them (``pixel_values_videos``, ``video_grid_thw``); that processor needs
torchvision, which this project does not install, so the layout is rebuilt
here and tested against ``model(pixel_values_videos=..., video_grid_thw=...)``.
The prompt is the checkpoint's chat template with one video, its
``<|video_pad|>`` repeated once per merged video token. Positions are M-RoPE
as transformers' ``get_rope_index`` computes them: temporal patch i sits at
time ``int(i * interval)``, interval 1 for Qwen2-VL and
``tokens_per_second * second_per_grid_t`` for Qwen2.5-VL, where
``second_per_grid_t = temporal_patch_size / fps`` comes from the frame times.
The forward is the adapter's (`HFReferenceQA.decode`, `policies.qa.hf.window`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from agentrt.errors import ModelError
from policies.qa.hf.reference import HFReferenceQA
from policies.qa.hf.window import Builder

__all__ = ["SmolVideoReference", "VideoReference", "video_reference"]


class VideoReference:
    """A Qwen2-VL / Qwen2.5-VL checkpoint answering about a whole clip, as its authors feed one."""

    def __init__(self, ref: HFReferenceQA) -> None:
        if not ref.qa.mrope:
            raise ModelError(f"{ref.qa.name}: VideoReference is for Qwen2-VL / Qwen2.5-VL; use video_reference()")
        self.ref = ref
        self.config = ref.qa.model.config

    def inputs(self, frames: Sequence[np.ndarray], times_s: Sequence[float], question: str) -> dict[str, torch.Tensor]:
        """The model's inputs for ``frames`` (RGB uint8, one size) taken at ``times_s`` and ``question``."""
        step = _frame_step(frames, times_s)
        processor = self.ref.processor
        ip = processor.image_processor
        patch, merge, tp = int(ip.patch_size), int(ip.merge_size), int(ip.temporal_patch_size)
        video = _pixels(frames, ip)  # [N, 3, H, W]
        if pad := -len(video) % tp:
            video = torch.cat([video, video[-1:].expand(pad, -1, -1, -1)])
        n, c, height, width = video.shape
        gt, gh, gw = n // tp, height // patch, width // patch
        patches = video.view(gt, tp, c, gh // merge, merge, patch, gw // merge, merge, patch)
        patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(gt * gh * gw, c * tp * patch * patch)
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question.strip()}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        if prompt.count("<|video_pad|>") != 1:
            raise ModelError(f"{self.ref.qa.name}: the chat template puts no <|video_pad|> for a video; "
                             "save the checkpoint's own chat template beside the weights")
        prompt = prompt.replace("<|video_pad|>", "<|video_pad|>" * (gt * gh * gw // merge**2))
        ids = processor.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        kinds = (ids == int(self.config.video_token_id)).int() * 2  # text 0, image 1, video 2
        out = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mm_token_type_ids": kinds,
               "pixel_values_videos": patches, "video_grid_thw": torch.tensor([[gt, gh, gw]])}
        if self.config.model_type == "qwen2_5_vl":
            out["second_per_grid_ts"] = torch.tensor([tp * step])
        return out

    def time_interval(self, inputs: dict[str, torch.Tensor]) -> float:
        """M-RoPE time positions between temporal patches, as transformers' get_rope_index spaces them."""
        if "second_per_grid_ts" not in inputs:
            return 1.0
        return float(self.config.vision_config.tokens_per_second) * float(inputs["second_per_grid_ts"][0])

    @torch.no_grad()
    def prefill(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The adapter's sequence for ``inputs``: embeddings [T, C] and M-RoPE positions [3, T]."""
        qa, inner = self.ref.qa, self.ref.qa.model.model
        ids = inputs["input_ids"][0].to(qa.device)
        embeds = qa.embed_tokens(ids)
        thw = inputs["video_grid_thw"].to(qa.device)
        out = inner.get_video_features(pixel_values_videos=inputs["pixel_values_videos"].to(qa.device, embeds.dtype),
                                       video_grid_thw=thw)
        features = torch.cat([g.reshape(-1, g.shape[-1]) for g in out.pooler_output]).to(embeds.dtype)
        is_video = ids == int(self.config.video_token_id)
        where = torch.nonzero(is_video)[:, 0]
        if len(where) != features.shape[0] or int(where[-1] - where[0]) + 1 != len(where):
            raise ModelError(f"{qa.name}: {len(where)} video tokens for {features.shape[0]} video features")
        merge = int(inner.config.vision_config.spatial_merge_size)
        gt, gh, gw = (int(v) for v in thw[0])
        start, stop = int(where[0]), int(where[-1]) + 1
        b = Builder(True)
        b.text(embeds[:start])
        b.video(features.reshape(gt, gh // merge, gw // merge, -1), self.time_interval(inputs))
        b.text(embeds[stop:])
        chunk = b.chunk()
        return chunk.embeds, chunk.positions

    @torch.no_grad()
    def logits(self, inputs: dict[str, torch.Tensor], answer: Sequence[int] = ()) -> torch.Tensor:
        """Logits [1 + len(answer), V]: after the prompt, then after each ``answer`` token (teacher forcing)."""
        embeds, positions = self.prefill(inputs)
        if answer:
            nxt = int(positions.max()) + 1
            embeds = torch.cat([embeds, self.ref.qa._embed(list(answer))])
            steps = torch.arange(nxt, nxt + len(answer), device=positions.device).expand(3, len(answer))
            positions = torch.cat([positions, steps], dim=1)
        lm = self.ref.qa.lm  # the rows wanted through the head (TextLM's forward gives the last row's only)
        pos = positions[:, None] if lm.mrope else positions[:1]  # [3, 1, T] or [1, T], as TextLM passes them
        hidden = lm.model(inputs_embeds=embeds[None], position_ids=pos.to(self.ref.device),
                          use_cache=False).last_hidden_state[0]
        return lm.head(hidden[-1 - len(answer):])

    def answer_tokens(self, frames: Sequence[np.ndarray], times_s: Sequence[float], question: str, *,
                      max_new_tokens: int = 32) -> list[int]:
        """Greedy answer ids (the stop token left out), as ``model.generate(do_sample=False)`` gives them."""
        embeds, positions = self.prefill(self.inputs(frames, times_s, question))
        return list(self.ref.decode(embeds, positions, max_new_tokens=max_new_tokens))


class SmolVideoReference(VideoReference):
    """SmolVLM2: sampled frames with their timestamps in the prompt, as its processor expands ``<video>``.

    The prompt is the processor's video chat template with ``<video>`` replaced by
    "You are provided the following series of {N in words} frames from a
    {H:MM:SS} [H:MM:SS] video." and, per frame, "Frame from MM:SS:" and the
    frame's global-image tokens, then a blank line (transformers'
    ``SmolVLMProcessor.replace_video_token``). Each frame is one image, not split,
    squared to ``max_image_size`` by the image processor (``do_image_splitting=False``),
    as the video processor squares frames to match it.
    """

    def __init__(self, ref: HFReferenceQA) -> None:
        if ref.qa.mrope:
            raise ModelError(f"{ref.qa.name}: SmolVideoReference is for SmolVLM2; use video_reference()")
        self.ref = ref
        self.config = ref.qa.model.config

    def inputs(self, frames: Sequence[np.ndarray], times_s: Sequence[float], question: str) -> dict[str, torch.Tensor]:
        from datetime import timedelta

        from num2words import num2words
        from PIL import Image

        _frame_step(frames, times_s)
        processor = self.ref.processor
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question.strip()}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        if prompt.count("<video>") != 1:
            raise ModelError(f"{self.ref.qa.name}: the chat template puts no <video> for a video; "
                             "save the checkpoint's own chat template beside the weights")
        one = (processor.fake_image_token + processor.global_image_token
               + processor.image_token * int(processor.image_seq_len) + processor.fake_image_token)
        count, duration = num2words(len(frames)), timedelta(seconds=int(times_s[-1]))
        video = f"You are provided the following series of {count} frames from a {duration} [H:MM:SS] video.\n"
        for t in times_s:
            video += f"\nFrame from {int(t // 60):02d}:{int(t % 60):02d}:" + one
        prompt = prompt.replace("<video>", video + "\n\n")
        ids = processor.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        pixels = processor.image_processor(images=[[Image.fromarray(np.ascontiguousarray(f[..., :3])) for f in frames]],
                                           do_image_splitting=False, return_tensors="pt")
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": pixels["pixel_values"],
                "pixel_attention_mask": pixels["pixel_attention_mask"]}

    def prefill(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ref.prefill(inputs)  # frames are images to SmolVLM: the one-image path places them all


def video_reference(ref: HFReferenceQA) -> VideoReference:
    """The video reference for ``ref``'s family: Qwen2-VL / Qwen2.5-VL grids or SmolVLM2 timestamped frames."""
    return VideoReference(ref) if ref.qa.mrope else SmolVideoReference(ref)


def _frame_step(frames: Sequence[np.ndarray], times_s: Sequence[float]) -> float:
    """Seconds between sampled frames (1 / fps); one frame counts as 1 s apart, transformers' default."""
    if len(frames) != len(times_s) or not frames:
        raise ModelError(f"video: {len(frames)} frames and {len(times_s)} times; give one time per frame")
    if len(times_s) < 2:
        return 1.0
    step = (float(times_s[-1]) - float(times_s[0])) / (len(times_s) - 1)
    if step <= 0:
        raise ModelError(f"video: frame times must increase, got {times_s[0]} .. {times_s[-1]}")
    return step


def _pixels(frames: Sequence[np.ndarray], ip: Any) -> torch.Tensor:
    """Frames resized to one ``smart_resize`` size with the image processor's resampling, rescaled, normalised."""
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    height, width = frames[0].shape[:2]
    if any(f.shape[:2] != (height, width) for f in frames):
        raise ModelError("video: frames of different sizes; resize them to one size first")
    size = ip.size
    h, w = smart_resize(height, width, factor=int(ip.patch_size) * int(ip.merge_size),
                        min_pixels=int(size["shortest_edge"]), max_pixels=int(size["longest_edge"]))
    resample = ip.resample if ip.resample is not None else Image.Resampling.BICUBIC
    out = []
    for frame in frames:
        image = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
        if (h, w) != (height, width):
            image = image.resize((w, h), resample=resample)
        out.append(torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1))
    video = torch.stack(out) * float(ip.rescale_factor)
    mean = torch.tensor(ip.image_mean, dtype=torch.float32)[None, :, None, None]
    std = torch.tensor(ip.image_std, dtype=torch.float32)[None, :, None, None]
    return (video - mean) / std
