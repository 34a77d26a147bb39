"""Hugging Face VLM adapters: tiny random checkpoints saved offline, loaded back through load_hf_videoqa."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrt.errors import ModelError
from agentrt.testing import fake_frame
from policies.qa.hf.vlm import HFVideoQAConfig, load_hf_videoqa
from policies.qa.videoqa import VideoQAModel, load_videoqa
from tests.qa.tiny_vlms import KINDS, save_tiny

QUESTION = "what is the robot holding?"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_vlms")
    return {kind: save_tiny(kind, root / kind) for kind in KINDS}


def _load(folder: Path, **overrides: object) -> object:
    config = HFVideoQAConfig(**{"qwen_max_pixels": 112 * 112, "window_tokens": 64, **overrides})  # type: ignore[arg-type]
    return load_hf_videoqa(str(folder), config=config)


def _feed(model: object, first: int, count: int) -> None:
    for i in range(first, first + count):
        model.ingest(fake_frame(i, height=96, width=128).image, 1_000 + i)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_and_streamed_answer_equals_full_prefill(checkpoints: dict[str, Path], kind: str) -> None:
    model = _load(checkpoints[kind], keep_transcript=True, window_tokens=512)
    assert isinstance(model, VideoQAModel)
    _feed(model, 0, 4)
    assert model.window.evicted_rows == 0  # type: ignore[attr-defined]
    streamed = list(model.answer_tokens(QUESTION, max_new_tokens=8))  # type: ignore[attr-defined]
    assert streamed == model.reference_tokens(QUESTION, 8)  # type: ignore[attr-defined]
    pieces = list(model.answer(QUESTION, max_new_tokens=8))  # type: ignore[attr-defined]
    assert all(isinstance(p, str) for p in pieces)


@pytest.mark.parametrize("kind", ["smolvlm", "qwen2_vl"])
def test_eviction_renumbers_exactly(checkpoints: dict[str, Path], kind: str) -> None:
    """After frames were evicted, the answer equals a full prefill of the kept window (M-RoPE included)."""
    model = _load(checkpoints[kind], keep_transcript=True, window_tokens=40)
    _feed(model, 0, 20)
    assert model.window.evicted_rows > 0  # type: ignore[attr-defined]
    assert list(model.answer_tokens(QUESTION, max_new_tokens=8)) == model.reference_tokens(QUESTION, 8)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["smolvlm", "qwen2_5_vl"])
def test_cache_reusing_nothing_equals_no_cache(checkpoints: dict[str, Path], kind: str) -> None:
    exact = _load(checkpoints[kind], use_cache=True, vit_ratio=1.0, skip_threshold=0.0)
    plain = _load(checkpoints[kind], use_cache=False)
    for model in (exact, plain):
        _feed(model, 0, 6)
    assert list(exact.answer_tokens(QUESTION, max_new_tokens=8)) == list(plain.answer_tokens(QUESTION, max_new_tokens=8))  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["smolvlm", "qwen2_vl"])
def test_prefilled_newest_frame_changes_nothing(checkpoints: dict[str, Path], kind: str) -> None:
    """Running the slow frame at ingest (so a question runs only its text) gives the same answer."""
    ahead = _load(checkpoints[kind], prefill_slow=True, window_tokens=40)
    asked = _load(checkpoints[kind], prefill_slow=False, window_tokens=40)
    for model in (ahead, asked):
        _feed(model, 0, 12)
    assert ahead.window.tail is not None and asked.window.tail is None  # type: ignore[attr-defined]
    assert list(ahead.answer_tokens(QUESTION, max_new_tokens=8)) == list(asked.answer_tokens(QUESTION, max_new_tokens=8))  # type: ignore[attr-defined]


def test_unchanged_frames_are_skipped(checkpoints: dict[str, Path]) -> None:
    for kind in ("smolvlm", "qwen2_vl"):
        model = _load(checkpoints[kind])
        image = fake_frame(0, height=96, width=128).image
        for i in range(5):
            model.ingest(image, i)  # type: ignore[attr-defined]
        assert model.stats()["frame_skip_rate"] > 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["smolvlm", "qwen2_vl"])
def test_memory_stays_bounded(checkpoints: dict[str, Path], kind: str) -> None:
    model = _load(checkpoints[kind], window_tokens=48)
    sinks = model.window.sink_rows  # type: ignore[attr-defined]
    _feed(model, 0, 30)
    first = model.memory()  # type: ignore[attr-defined]
    _feed(model, 30, 60)
    later = model.memory()  # type: ignore[attr-defined]
    assert later["frames"] == 90
    tail = model.window.tail.rows  # type: ignore[attr-defined]  # the newest frame, pre-filled for questions
    assert later["tokens"] <= sinks + 48 + tail
    assert later["bytes"] <= first["bytes"] * 1.1


def test_asking_leaves_the_memory_as_it_was(checkpoints: dict[str, Path]) -> None:
    model = _load(checkpoints["qwen2_vl"], keep_transcript=True)
    _feed(model, 0, 3)
    before = model.memory()  # type: ignore[attr-defined]
    first = list(model.answer_tokens(QUESTION, max_new_tokens=6))  # type: ignore[attr-defined]
    assert model.memory() == before  # type: ignore[attr-defined]
    partial = model.answer_tokens(QUESTION, max_new_tokens=6)  # type: ignore[attr-defined]
    next(partial)  # abandoned half-way: the next call closes it and crops the cache back
    assert list(model.answer_tokens(QUESTION, max_new_tokens=6)) == first  # type: ignore[attr-defined]
    assert model.memory() == before  # type: ignore[attr-defined]


def test_loaded_through_the_videoqa_table(checkpoints: dict[str, Path]) -> None:
    model = load_videoqa(f"hf:{checkpoints['smolvlm']}")
    assert model.name.startswith("hf:")
    model.ingest(fake_frame(0).image, 0)
    assert model.memory()["frames"] == 1


def test_bad_folders_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such folder") as missing:
        load_hf_videoqa(str(tmp_path / "nowhere"))
    assert "\n" not in str(missing.value)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match="model_type 'bert' is not supported") as unsupported:
        load_hf_videoqa(str(tmp_path))
    assert "\n" not in str(unsupported.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="config.json is missing"):
        load_hf_videoqa(str(empty))
