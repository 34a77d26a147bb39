"""How far the streaming mode drifts from the video reference on the same stream (Qwen2-VL, Qwen2.5-VL, SmolVLM2).

The reference (`policies.qa.hf.video`) sees every frame as the authors feed
a video and answers greedily. The streaming mode (`policies.qa.hf.vlm`:
slow-fast tokens, the cached ViT, the bounded KV window) ingests the same
frames one by one and is then teacher-forced on the reference's answer: at
each answer step both give next-token logits, and the measure is how often
the two argmaxes agree (top-1 agreement) and the max / mean absolute logit
error. The streaming logits come from a full prefill of the rows the window
kept (``keep_transcript``), the same inputs its KV cache holds; its own
free-running greedy answer is compared too. Figures: docs/qa.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from agentrt.errors import ModelError
from policies.qa.hf.reference import HFReferenceQA
from policies.qa.hf.video import video_reference
from policies.qa.hf.vlm import HFVideoQA, HFVideoQAConfig, load_hf_videoqa
from policies.qa.hf.window import join

__all__ = ["Drift", "compare", "measure_drift", "streaming_logits"]


@dataclass(frozen=True)
class Drift:
    """One stream's drift: ``steps`` teacher-forced steps (the reference answer + the step after it)."""

    frames: int
    steps: int
    top1_agreement: float  # fraction of steps where the streaming argmax is the reference's
    max_logit_error: float
    mean_logit_error: float
    same_answer: bool  # the streaming mode's own greedy answer equals the reference's
    stream_tokens: int  # LM rows the streaming window held at question time


def compare(reference: torch.Tensor, other: torch.Tensor) -> tuple[float, float, float]:
    """Top-1 agreement, max and mean absolute error of ``other`` against ``reference`` (both [steps, V])."""
    if reference.shape != other.shape:
        raise ModelError(f"drift: logits of shape {tuple(reference.shape)} and {tuple(other.shape)}")
    agree = (reference.argmax(-1) == other.argmax(-1)).float().mean()
    error = (reference.float() - other.float()).abs()
    return float(agree), float(error.max()), float(error.mean())


@torch.no_grad()
def streaming_logits(qa: HFVideoQA, question: str, answer: Sequence[int]) -> torch.Tensor:
    """The streaming mode's logits [1 + len(answer), V] after its window + ``question``, teacher-forced on
    ``answer`` (needs ``keep_transcript``); positions as `HFVideoQA.reference_tokens` numbers them."""
    if not qa.config.keep_transcript:
        raise ModelError("streaming_logits needs HFVideoQAConfig(keep_transcript=True)")
    window = qa.window
    q = join(qa._slow_chunk(), qa._text_chunk(question))
    kept, kept_positions = window.transcript()
    start = window.next_pos + q.span
    steps = torch.arange(start, start + len(answer)).expand(3, len(answer))
    embeds = torch.cat([kept, q.embeds, qa._embed(list(answer))])
    positions = torch.cat([kept_positions, q.positions + window.next_pos, steps], dim=1)
    pos = positions[:, None] if qa.mrope else positions[:1]  # [3, 1, T] or [1, T], as TextLM passes them
    hidden = qa.lm.model(inputs_embeds=embeds[None].to(qa.device), position_ids=pos.to(qa.device),
                         use_cache=False).last_hidden_state[0]
    return qa.lm.head(hidden[-1 - len(answer):])


def measure_drift(path: str, frames: Sequence[np.ndarray], times_s: Sequence[float], question: str, *,
                  config: HFVideoQAConfig | None = None, max_new_tokens: int = 16) -> Drift:
    """Streaming mode (``config``) against the video reference on one stream of ``frames`` at ``times_s``."""
    stream_config = dataclasses.replace(config or HFVideoQAConfig(), keep_transcript=True)
    qa = load_hf_videoqa(path, config=stream_config)
    assert isinstance(qa, HFVideoQA)
    video = video_reference(HFReferenceQA(qa))  # the same weights, the authors' inputs
    inputs = video.inputs(frames, times_s, question)
    answer = video.answer_tokens(frames, times_s, question, max_new_tokens=max_new_tokens)
    reference = video.logits(inputs, answer)
    qa.reset()
    for frame, t in zip(frames, times_s, strict=True):
        qa.ingest(frame, int(round(t * 1e9)))
    stream = streaming_logits(qa, question, answer)
    own = list(qa.answer_tokens(question, max_new_tokens=max_new_tokens))
    agree, worst, mean = compare(reference, stream)
    return Drift(frames=len(frames), steps=len(answer) + 1, top1_agreement=agree, max_logit_error=worst,
                 mean_logit_error=mean, same_answer=own == answer, stream_tokens=qa.window.length)
