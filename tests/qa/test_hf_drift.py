"""The streaming mode's drift from the video reference on one stream: the measurement runs and is finite, and the
reference measured against itself agrees 100 % with zero error. ``pytest -s`` prints the figures in docs/qa.md."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from agentrt.errors import ModelError
from policies.qa.hf.drift import compare, measure_drift, streaming_logits
from policies.qa.hf.reference import HFReferenceQA
from policies.qa.hf.video import video_reference
from policies.qa.hf.vlm import HFVideoQA, HFVideoQAConfig, load_hf_videoqa
from tests.qa.test_hf_video_reference import KINDS, clip_frames
from tests.qa.tiny_processors import save_with_processor

QUESTION = "what happens in the video?"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_drift")
    return {kind: save_with_processor(kind, root / kind) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("count, window", [(8, 512), (16, 512), (16, 64)])
def test_drift_of_streaming_from_the_video_reference_is_measured(folders: dict[str, Path], kind: str, count: int,
                                                                  window: int) -> None:
    frames, times = clip_frames(count)
    drift = measure_drift(str(folders[kind]), frames, times, QUESTION, config=HFVideoQAConfig(window_tokens=window),
                          max_new_tokens=8)
    print(f"\n{kind} frames={count} window_tokens={window}: {drift}")
    assert drift.frames == count and 1 <= drift.steps <= 9
    assert 0.0 <= drift.top1_agreement <= 1.0
    assert math.isfinite(drift.max_logit_error) and 0.0 <= drift.mean_logit_error <= drift.max_logit_error
    assert drift.stream_tokens > 0


@pytest.mark.parametrize("kind", KINDS)
def test_drift_of_the_reference_from_itself_is_zero(folders: dict[str, Path], kind: str) -> None:
    ref = load_hf_videoqa(str(folders[kind]), reference=True)
    assert isinstance(ref, HFReferenceQA)
    video = video_reference(ref)
    frames, times = clip_frames(8)
    inputs = video.inputs(frames, times, QUESTION)
    answer = video.answer_tokens(frames, times, QUESTION, max_new_tokens=8)
    agree, worst, mean = compare(video.logits(inputs, answer), video.logits(video.inputs(frames, times, QUESTION),
                                                                             answer))
    assert (agree, worst, mean) == (1.0, 0.0, 0.0)


def test_compare_counts_disagreeing_steps() -> None:
    reference = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    other = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 2.0], [3.0, 0.5]])
    agree, worst, mean = compare(reference, other)
    assert agree == 0.75 and worst == 1.0 and mean == pytest.approx(2.5 / 8)
    with pytest.raises(ModelError, match="shape"):
        compare(reference, other[:2])


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_logits_are_what_the_streaming_mode_answers_from(folders: dict[str, Path], kind: str) -> None:
    """Teacher-forced on the streaming mode's own greedy answer (KV cache, bounded window), the streaming logits
    pick that answer token for token: they are the logits the streaming mode decodes from."""
    qa = load_hf_videoqa(str(folders[kind]), config=HFVideoQAConfig(window_tokens=64, keep_transcript=True))
    assert isinstance(qa, HFVideoQA)
    frames, times = clip_frames(12)
    for frame, t in zip(frames, times, strict=True):
        qa.ingest(frame, int(t * 1e9))
    assert qa.window.evicted_rows > 0  # the window did bound the stream
    own = list(qa.answer_tokens(QUESTION, max_new_tokens=8))
    picked = streaming_logits(qa, QUESTION, own).argmax(-1).tolist()
    assert picked[:len(own)] == own
    if len(own) < 8:
        assert picked[len(own)] in qa.stop_ids
