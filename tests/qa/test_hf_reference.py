"""Reference mode equals transformers: the adapter's logits and greedy answers on the checkpoint's own processor
inputs, against ``model(**inputs)`` and ``model.generate(do_sample=False)``, for tiny random checkpoints saved
with their real processor classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agentrt.cli.__main__ import main
from agentrt.errors import ModelError
from agentrt.testing import fake_frame
from policies.qa.domain_bench import videos_folder
from policies.qa.hf.reference import HFReferenceQA, load_processor
from policies.qa.hf.vlm import load_hf_videoqa
from tests.qa.tiny_processors import save_with_processor
from tests.qa.tiny_vlms import save_tiny

KINDS = ("qwen2_vl", "qwen2_5_vl", "smolvlm", "idefics3")
PROCESSORS = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor", "smolvlm": "SmolVLMProcessor",
              "idefics3": "Idefics3Processor"}
QUESTIONS = ("what is the robot holding?", "how many objects are there?", "what colour is the cube")
VIDEOS = videos_folder()  # the four clips: $AGENTRT_VIDEOS, else ../shared/data/videos beside the checkout
NEW_TOKENS = 6


def _synthetic() -> list[np.ndarray]:
    noise = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    # shapes that split differently: 2x2 tiles + global view for most, 1x2 for the wide strip (SmolVLM)
    return [fake_frame(3, height=96, width=128).image, noise, fake_frame(7, height=300, width=180).image,
            fake_frame(9, height=60, width=240).image]


def _video_frames() -> list[np.ndarray]:
    """The first frame of each clip in ../shared/data/videos, at full resolution (PyAV)."""
    import av

    frames = []
    for path in sorted(VIDEOS.glob("*.mp4")) + sorted(VIDEOS.glob("*.mkv")):
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            frames.append(frame.to_ndarray(format="rgb24"))
    return frames


class _Checkpoints(dict[str, Path]):
    """Each kind's checkpoint built on first use, once per module."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, kind: str) -> Path:
        self[kind] = save_with_processor(kind, self.root / kind)
        return self[kind]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _Checkpoints(tmp_path_factory.mktemp("tiny_reference"))


def _check(folder: Path, images: list[np.ndarray]) -> None:
    qa = load_hf_videoqa(str(folder), reference=True)
    assert isinstance(qa, HFReferenceQA)
    model = qa.qa.model
    for image in images:
        for question in QUESTIONS:
            inputs = qa.inputs(image, question)
            with torch.no_grad():
                expected = model(**inputs).logits[0, -1]
                generated = model.generate(**inputs, do_sample=False, max_new_tokens=NEW_TOKENS)
            gap = float((qa.logits(inputs) - expected).abs().max())
            assert gap <= 1e-4, f"{folder.name} {image.shape} {question!r}: logits differ by {gap:.2e}"
            tokens = generated[0, inputs["input_ids"].shape[1]:].tolist()
            stop = next((i for i, t in enumerate(tokens) if t in qa.stop_ids), len(tokens))
            assert qa.answer_tokens(image, question, max_new_tokens=NEW_TOKENS) == tokens[:stop]


@pytest.mark.parametrize("kind", KINDS)
def test_reference_equals_transformers_on_synthetic_images(checkpoints: dict[str, Path], kind: str) -> None:
    _check(checkpoints[kind], _synthetic())


@pytest.mark.parametrize("kind", KINDS)
def test_reference_equals_transformers_on_video_frames(checkpoints: dict[str, Path], kind: str) -> None:
    if not VIDEOS.is_dir():
        pytest.skip(f"no clips at {VIDEOS} (set AGENTRT_VIDEOS to the folder of the clips)")
    frames = _video_frames()
    if not frames:
        pytest.skip(f"no .mp4 / .mkv clips in {VIDEOS}")
    _check(checkpoints[kind], frames)


@pytest.mark.parametrize("kind", KINDS)
def test_reference_processor_is_the_checkpoints_own(checkpoints: dict[str, Path], kind: str) -> None:
    processor = load_processor(checkpoints[kind])
    assert type(processor).__name__ == PROCESSORS[kind]
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}], add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>") and "hi" in prompt


def test_reference_answers_about_the_newest_frame(checkpoints: dict[str, Path]) -> None:
    qa = load_hf_videoqa(str(checkpoints["qwen2_vl"]), reference=True)
    assert isinstance(qa, HFReferenceQA)
    with pytest.raises(ModelError, match="none came in yet"):
        list(qa.answer("what?"))
    first, newest = _synthetic()[:2]
    qa.ingest(first, 0)
    qa.ingest(newest, 1)
    text = "".join(qa.answer(QUESTIONS[0], max_new_tokens=NEW_TOKENS))
    ids = qa.answer_tokens(newest, QUESTIONS[0], max_new_tokens=NEW_TOKENS)
    assert text == qa.processor.tokenizer.decode(ids, skip_special_tokens=True)
    assert qa.memory()["frames"] == 2


def test_ask_reference_answers_about_the_last_frame_of_a_recording(checkpoints: dict[str, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), fake_frame(i, height=120, width=160).image)
    folder = checkpoints["smolvlm"]
    code = main(["ask", QUESTIONS[1], "--source", str(tmp_path), "--model", f"hf:{folder}", "--reference",
                 "--max-new-tokens", str(NEW_TOKENS)])
    out = capsys.readouterr()
    assert code == 0, out.err
    qa = load_hf_videoqa(str(folder), reference=True)
    qa.ingest(cv2.cvtColor(cv2.imread(str(tmp_path / "002.png")), cv2.COLOR_BGR2RGB), 0)
    assert out.out.strip() == "".join(qa.answer(QUESTIONS[1], max_new_tokens=NEW_TOKENS)).strip()


@pytest.mark.parametrize("argv, expected", [
    (["--model", "nano"], "--reference needs a Hugging Face model"),
    (["--server", "http://127.0.0.1:9"], "--reference runs the model here"),
])
def test_ask_reference_errors_are_one_line(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    source = [] if "--server" in argv else ["--source", "synthetic", "--frames", "1"]
    assert main(["ask", "what?", "--reference", *source, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err


def test_reference_without_a_processor_says_what_to_save(tmp_path: Path) -> None:
    folder = save_tiny("qwen2_vl", tmp_path / "bare")
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(ModelError, match="save_pretrained") as missing:
        load_hf_videoqa(str(folder), reference=True)
    assert "\n" not in str(missing.value)


def test_reference_names_a_wrong_tile_token_count(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    import json
    import shutil

    folder = Path(shutil.copytree(checkpoints["idefics3"], tmp_path / "idefics3"))
    path = folder / "processor_config.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "image_seq_len"}))
    with pytest.raises(ModelError, match='"image_seq_len": 16') as wrong:
        load_hf_videoqa(str(folder), reference=True)
    assert "\n" not in str(wrong.value)
