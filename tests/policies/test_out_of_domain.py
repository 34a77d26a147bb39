"""Out of domain, never silently: words a model does not know, the robot the weights were trained on, and what eval reports."""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from dataclasses import asdict
from pathlib import Path

import pytest

from agentrt.errors import ConfigError
from agentrt.messages import Answer, Query
from agentrt.testing import MockNode, fake_frame
from policies.policy import default_weights

shipped = pytest.mark.skipif(not default_weights("ar").exists(), reason="no shipped weights")

# sha256 of the tensor bytes (everything after the safetensors header) of the shipped nano VLA weights, as trained;
# naming their robot rewrote only the header
SHIPPED_TENSORS_SHA256 = {
    "nano_vla.safetensors": "4ec46cc264b842eceec4dbb5d81b9c26a47037732e3c25f43e683d4734978774",
    "nano_vla_cd.safetensors": "cbdb7a040ad61bf21dfc7cfaf8e4dd5fd3d044285e1255a88a3e0ffdeb9149e5",
}


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


# -- words -----------------------------------------------------------------------------------------

def test_check_words_reads_what_a_person_wrote() -> None:
    from policies.vocabulary import check_words, unknown_share

    check = check_words("Où est le cube rouge ? 5", {"cube", "the", "o"}, limit=3)
    assert check.words == ("où", "est", "le", "cube", "rouge", "5")
    assert check.unknown == ("où", "est", "le", "rouge", "5") and check.unknown_count == 5  # "où" is not "o"
    assert check.cut == ("cube", "rouge")  # the tokenizer reads o est le | cube rouge
    assert check.known == ("cube",) and not check.clean
    assert unknown_share([check, check_words("the cube", {"the", "cube"})]) == 5 / 8
    assert not check_words("?!", {"the"}).clean  # no words at all is not a clean question


# -- the weights name their robot ------------------------------------------------------------------

@shipped
@pytest.mark.parametrize("name", sorted(SHIPPED_TENSORS_SHA256))
def test_shipped_weights_name_the_panda_and_their_tensors_are_as_trained(name: str) -> None:
    from policies.nano_vla import load_model, trained_robot

    path = default_weights("ar").parent / name
    raw = path.read_bytes()
    header = struct.unpack("<Q", raw[:8])[0]
    assert hashlib.sha256(raw[8 + header :]).hexdigest() == SHIPPED_TENSORS_SHA256[name]
    _, extra = load_model(path)
    assert extra["robot"] == "panda" and trained_robot(extra, path) == "panda"
    assert json.loads(path.with_suffix(".json").read_text())["robot"] == "panda"


def test_saved_weights_name_their_robot_and_old_ones_are_taken_for_the_panda(tmp_path: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    from safetensors.torch import save_file

    from policies.nano_vla import NanoVLA, NanoVLAConfig, load_model, save_model, trained_robot

    model = NanoVLA(NanoVLAConfig(words=["a"], image_size=32, patch_size=8, vit_width=32, vit_depth=1, vit_heads=2,
                                  width=32, depth=1, heads=2, chunk_steps=2)).eval()
    save_model(model, tmp_path / "k.safetensors", robot="kuka_iiwa")
    _, extra = load_model(tmp_path / "k.safetensors")
    assert trained_robot(extra) == "kuka_iiwa"
    with pytest.raises(ConfigError, match="name the robot"):
        save_model(model, tmp_path / "x.safetensors", robot="")
    # a checkpoint from before weights named their robot
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "decoder.lm_head.weight"}
    save_file(state, str(tmp_path / "old.safetensors"),
              metadata={"config": json.dumps(asdict(model.config))})
    _, extra = load_model(tmp_path / "old.safetensors")
    caplog.set_level(logging.INFO)
    assert trained_robot(extra, tmp_path / "old.safetensors") == "panda"
    assert _lines(caplog, "names no robot")


def test_training_data_names_its_robot(tmp_path: Path) -> None:
    from policies.data import data_robot

    for name, info in (("old", {"image_size": 32}), ("panda", {"robot": "panda"}), ("kuka", {"robot": "kuka_iiwa"})):
        (tmp_path / name / "meta").mkdir(parents=True)
        (tmp_path / name / "meta" / "info.json").write_text(json.dumps(info))
    assert data_robot(f"{tmp_path / 'old'},{tmp_path / 'panda'}") == "panda"  # data from before: the Panda
    with pytest.raises(ConfigError, match="different robots"):
        data_robot(f"{tmp_path / 'panda'},{tmp_path / 'kuka'}")


# -- the QA node -----------------------------------------------------------------------------------

def _ask(harness: MockNode, *questions: str) -> dict[str, str]:
    inputs: list[tuple[str, object]] = [("frames", fake_frame(0))]
    inputs += [("queries", Query(f"q{i}", i, 0, text)) for i, text in enumerate(questions)]
    out = harness.run(inputs=inputs)  # type: ignore[arg-type]
    answers: dict[str, str] = {}
    for _, m in out:
        if isinstance(m, Answer):
            answers[m.query_id] = answers.get(m.query_id, "") + m.text
    return answers


@pytest.mark.skipif(not (Path(__file__).parents[2] / "policies/weights/nano_qa.safetensors").exists(), reason="no nano QA weights")
def test_qa_node_says_which_words_it_does_not_know(caplog: pytest.LogCaptureFixture) -> None:
    from policies.qa_node import VideoQANode

    caplog.set_level(logging.WARNING)
    with MockNode(VideoQANode, params={"model": "nano"}) as harness:
        answers = _ask(harness, "Où est le cube rouge ?", "what is the robot holding right now?", "what is the robot holding?")
        french, flagged, plain = answers["q0"], answers["q1"], answers["q2"]
        assert french.startswith("I do not know the words 'où', 'est', 'le', 'rouge'")  # not put to the model
        assert flagged.startswith("(I do not know the word 'now') ") and len(flagged) > len("(I do not know the word 'now') ")
        assert "know" not in plain
        assert len(_lines(caplog, "question 'Où est le cube rouge ?'")) == 1
        assert len(_lines(caplog, "question 'what is the robot holding right now?'")) == 1
        counters = harness.node.stats.counters
        assert counters["questions_unknown_words"] == 2 and counters["questions_refused"] == 1


# -- eval ------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (Path(__file__).parents[2] / "policies/weights/nano_qa.safetensors").exists(), reason="no nano QA weights")
def test_eval_qa_reports_the_share_of_unknown_words() -> None:
    from policies.qa_eval import evaluate_qa
    from policies.videoqa import load_videoqa

    results, _ = evaluate_qa(load_videoqa("nano"), questions=6, reworded=True)
    unseen, reworded = (r.as_dict() for r in results)
    assert unseen["unknown_word_share"] == 0.0  # the training wording
    assert 0 < reworded["unknown_word_share"] < 0.5  # "which", "does", "see", ...
