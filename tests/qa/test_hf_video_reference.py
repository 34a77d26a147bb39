"""Video reference equals transformers: N frames through the authors' video layout (Qwen: 3-D patches,
video_grid_thw, M-RoPE time positions; SmolVLM2: timestamped frames in the prompt) give the adapter the logits
and greedy answers of ``model(**inputs)`` / ``generate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from agentrt.errors import ModelError
from agentrt.testing import fake_frame
from policies.qa.hf.reference import HFReferenceQA
from policies.qa.hf.video import VideoReference, video_reference
from policies.qa.hf.vlm import load_hf_videoqa
from tests.qa.test_hf_reference import VIDEOS
from tests.qa.tiny_processors import save_with_processor

QWEN = ("qwen2_vl", "qwen2_5_vl")
KINDS = (*QWEN, "smolvlm")
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_video")
    return {kind: save_with_processor(kind, root / kind) for kind in KINDS}


def _reference(folder: Path) -> VideoReference:
    ref = load_hf_videoqa(str(folder), reference=True)
    assert isinstance(ref, HFReferenceQA)
    return video_reference(ref)


def clip_frames(count: int) -> tuple[list[np.ndarray], list[float]]:
    """``count`` frames of the first clip in ../shared/data/videos (PyAV) with their times in seconds;
    synthetic frames 0.5 s apart where no clip is here."""
    clips = sorted(VIDEOS.glob("*.mp4")) if VIDEOS.is_dir() else []
    if not clips:
        return [fake_frame(i, height=120, width=160).image for i in range(count)], [0.5 * i for i in range(count)]
    import av

    frames, times = [], []
    with av.open(str(clips[0])) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time or 0.0))
            if len(frames) == count:
                break
    return frames, times


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("count", [1, 4, 5])
def test_video_reference_equals_transformers(folders: dict[str, Path], kind: str, count: int) -> None:
    video = _reference(folders[kind])
    model = video.ref.qa.model
    for frames, times in (clip_frames(count), ([fake_frame(i, height=96, width=200).image for i in range(count)],
                                               [0.25 * i for i in range(count)])):
        inputs = video.inputs(frames, times, "what happens in the video?")
        if kind in QWEN:
            assert int(inputs["video_grid_thw"][0, 0]) == (count + 1) // 2  # temporal patches of 2 frames
        with torch.no_grad():
            expected = model(**inputs).logits[0, -1]
            generated = model.generate(**inputs, do_sample=False, max_new_tokens=NEW_TOKENS)
        gap = float((video.logits(inputs)[-1] - expected).abs().max())
        assert gap <= 1e-4, f"{kind} {count} frames: logits differ by {gap:.2e}"
        tokens = generated[0, inputs["input_ids"].shape[1]:].tolist()
        stop = next((i for i, t in enumerate(tokens) if t in video.ref.stop_ids), len(tokens))
        assert video.answer_tokens(frames, times, "what happens in the video?",
                                   max_new_tokens=NEW_TOKENS) == tokens[:stop]


@pytest.mark.parametrize("kind", KINDS)
def test_video_reference_teacher_forced_logits_equal_transformers(folders: dict[str, Path], kind: str) -> None:
    video = _reference(folders[kind])
    frames, times = clip_frames(4)
    inputs = video.inputs(frames, times, "what is on the table?")
    answer = [5, 17, 42]
    ids = torch.cat([inputs["input_ids"], torch.tensor([answer])], dim=1)
    full = {**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if kind in QWEN:
        full["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros(1, 3, dtype=torch.int)], dim=1)
    with torch.no_grad():
        expected = video.ref.qa.model(**full).logits[0, -4:]
    assert float((video.logits(inputs, answer) - expected).abs().max()) <= 1e-4


def test_video_reference_patches_match_the_image_processors_layout(folders: dict[str, Path]) -> None:
    """Two copies of one frame are the image processor's own patches of that image (it repeats an image
    temporal_patch_size times): the same resize, normalisation and patch order."""
    video = _reference(folders["qwen2_vl"])
    image = fake_frame(3, height=120, width=160).image
    inputs = video.inputs([image, image], [0.0, 1.0], "q")
    own = video.ref.processor.image_processor(images=[Image.fromarray(image)], return_tensors="pt")
    assert inputs["video_grid_thw"].tolist() == own["image_grid_thw"].tolist()
    assert float((inputs["pixel_values_videos"] - own["pixel_values"]).abs().max()) <= 1e-5


def test_video_reference_time_positions_follow_the_frame_rate(folders: dict[str, Path]) -> None:
    """Qwen2.5-VL spaces temporal patches by tokens_per_second * 2 / fps; Qwen2-VL by one."""
    frames = [fake_frame(i, height=96, width=128).image for i in range(4)]
    slow, fast = _reference(folders["qwen2_5_vl"]), _reference(folders["qwen2_vl"])
    per_second = float(slow.config.vision_config.tokens_per_second)
    inputs = slow.inputs(frames, [0.0, 0.5, 1.0, 1.5], "q")
    assert float(inputs["second_per_grid_ts"][0]) == pytest.approx(1.0)
    assert slow.time_interval(inputs) == pytest.approx(per_second)
    assert fast.time_interval(fast.inputs(frames, [0.0, 0.5, 1.0, 1.5], "q")) == 1.0


def test_video_reference_errors_are_one_line(folders: dict[str, Path]) -> None:
    video = _reference(folders["qwen2_vl"])
    frame = fake_frame(0, height=96, width=128).image
    for frames, times, expected in (([frame], [0.0, 1.0], "one time per frame"),
                                    ([frame, frame], [1.0, 1.0], "must increase"),
                                    ([frame, fake_frame(1, height=64, width=64).image], [0.0, 1.0], "one size")):
        with pytest.raises(ModelError, match=expected) as error:
            video.inputs(frames, times, "q")
        assert "\n" not in str(error.value)


def test_smolvlm_video_reference_puts_the_frame_times_in_the_prompt(folders: dict[str, Path]) -> None:
    video = _reference(folders["smolvlm"])
    frames = [fake_frame(i, height=96, width=128).image for i in range(3)]
    inputs = video.inputs(frames, [0.0, 61.0, 125.5], "what happens?")
    prompt = video.ref.processor.tokenizer.decode(inputs["input_ids"][0])
    assert "series of three frames from a 0:02:05 [H:MM:SS] video." in prompt
    assert [line.split(":<")[0] for line in prompt.splitlines() if line.startswith("Frame from")] == [
        "Frame from 00:00", "Frame from 01:01", "Frame from 02:05"]
    assert inputs["pixel_values"].shape[:2] == (1, 3)  # one unsplit view per frame


def test_video_reference_classes_name_their_family(folders: dict[str, Path]) -> None:
    smol = load_hf_videoqa(str(folders["smolvlm"]), reference=True)
    assert isinstance(smol, HFReferenceQA)
    with pytest.raises(ModelError, match="video_reference"):
        VideoReference(smol)
