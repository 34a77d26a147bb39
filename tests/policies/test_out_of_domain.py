"""Out of domain, never silently: unknown words, a robot the weights were not trained on, and what eval reports."""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from agentrt.errors import ConfigError
from agentrt.messages import ActionChunk, Answer, Frame, Query, RobotState
from agentrt.testing import MockNode, fake_frame
from policies.vla.policy import default_weights

shipped = pytest.mark.skipif(not default_weights("ar").exists(), reason="no shipped weights")

# sha256 of the tensor bytes (everything after the safetensors header) of the shipped nano VLA weights, as trained
# (2026-12-06: fine-tuned with keypoint heights, then on demonstrations padded with the expert's next moves; MODEL_CARD.md)
SHIPPED_TENSORS_SHA256 = {
    "nano_vla.safetensors": "0cc009f940995d9f7595b0cdab14265806bfd51c9df4f8cbc0c8550b213d2dee",
    "nano_vla_cd.safetensors": "eadb3931aae6b92e775982da9c55ddccd9e1c9d55148091e26dfd00a371d9ff2",
}


def _state(robot: str = "panda", instruction: str = "touch the red cube", seq: int = 1, frame_seq: int = 7) -> RobotState:
    pose = np.array([0.45, 0.0, 0.3, 0, 0, 0, 1.0])
    return RobotState(robot, seq, 2, np.zeros(9), np.zeros(9), pose, 0.0, frame_seq, instruction=instruction, episode=0)


def _frame(seq: int) -> Frame:
    return Frame("scene", seq, 100 + seq, np.zeros((64, 64, 3), np.uint8))


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


# -- the policy node -------------------------------------------------------------------------------

@shipped
def test_unknown_words_are_logged_once_per_instruction_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    from policies.vla.node import NanoVLANode

    caplog.set_level(logging.WARNING)
    with MockNode(NanoVLANode, params={"decoding": "ar"}) as harness:
        state = _state(instruction="tap the red cube")
        out = harness.run(inputs=[("state", state), ("frames", _frame(7)), ("state", _state(instruction="tap the red cube", seq=2, frame_seq=8)),
                                  ("frames", _frame(8))])
        lines = _lines(caplog, "instruction 'tap the red cube'")
        assert len(lines) == 1 and "'tap'" in lines[0].getMessage() and "acting on the words it knows" in lines[0].getMessage()
        assert harness.node.stats.counters["instructions_unknown_words"] == 1
        assert harness.node.stats.counters["instructions_refused"] == 0
        assert len([m for _, m in out if isinstance(m, ActionChunk)]) == 2  # the object is named: it acts


@shipped
def test_an_instruction_naming_no_known_object_holds_the_robot(caplog: pytest.LogCaptureFixture) -> None:
    from agentrt.nodehost import NodeHost
    from policies.vla.node import NanoVLANode

    caplog.set_level(logging.WARNING)
    with MockNode(NanoVLANode, params={"decoding": "ar"}) as harness:
        out = harness.run(inputs=[("state", _state(instruction="grab the crimson block")), ("frames", _frame(7))])
        [line] = _lines(caplog, "instruction 'grab the crimson block'")
        assert line.levelno == logging.ERROR
        assert all(f"'{w}'" in line.getMessage() for w in ("grab", "crimson", "block"))
        counters = harness.node.stats.counters
        assert counters["instructions_refused"] == 1 and counters["frames_refused"] == 1
        # the frame is answered by holding still, so a lockstep sim runs the episode out instead of waiting
        [chunk] = [m for _, m in out if isinstance(m, ActionChunk)]
        assert chunk.frame_seq == 7 and np.all(chunk.actions[:, :3] == 0) and np.all(chunk.actions[:, 3] == 0)

        host = NodeHost({"name": "policy", "control": "inproc://silent-telemetry", "inputs": {}, "outputs": {}})
        sent: list[object] = []
        host._control_send = sent.append  # type: ignore[method-assign]
        host.node = harness.node
        host.flush_telemetry()
        host.close()
        assert sent[0].metrics["instructions_refused"] == 1  # type: ignore[attr-defined]

    with MockNode(NanoVLANode, params={"decoding": "ar", "unknown_object": "act"}) as guessing:
        out = guessing.run(inputs=[("state", _state(instruction="grab the crimson block")), ("frames", _frame(7))])
        [chunk] = [m for _, m in out if isinstance(m, ActionChunk)]
        assert guessing.node.stats.counters["instructions_refused"] == 0


@shipped
def test_an_instruction_param_naming_no_known_object_fails_the_start() -> None:
    from policies.vla.node import NanoVLANode

    harness = MockNode(NanoVLANode, params={"decoding": "ar", "instruction": "fetch the crimson block"})
    with pytest.raises(ConfigError, match="names no object the model knows") as refused:
        harness.setup()
    assert "'crimson'" in str(refused.value) and "\n" not in str(refused.value)


@shipped
@pytest.mark.parametrize("robot", ["kuka_iiwa", "xarm6"])
def test_a_robot_the_weights_were_not_trained_on_is_refused(robot: str) -> None:
    from policies.vla.node import NanoVLANode

    harness = MockNode(NanoVLANode, params={"decoding": "ar"})
    with pytest.raises(ConfigError, match="trained on the panda") as refused:
        harness.run(inputs=[("state", _state(robot)), ("frames", _frame(7))])
    assert robot in str(refused.value) and "allow_other_robot" in str(refused.value) and "\n" not in str(refused.value)
    assert not harness.sent
    harness.close()


@shipped
def test_allow_other_robot_drives_it_with_one_loud_warning(caplog: pytest.LogCaptureFixture) -> None:
    from policies.vla.node import NanoVLANode

    caplog.set_level(logging.WARNING)
    with MockNode(NanoVLANode, params={"decoding": "ar", "allow_other_robot": True}) as harness:
        out = harness.run(inputs=[("state", _state("kuka_iiwa")), ("frames", _frame(7)),
                                  ("state", _state("kuka_iiwa", seq=2, frame_seq=8)), ("frames", _frame(8))])
        assert len(_lines(caplog, "'kuka_iiwa'")) == 1
        assert len([m for _, m in out if isinstance(m, ActionChunk)]) == 2


# -- the weights name their robot ------------------------------------------------------------------

@shipped
@pytest.mark.parametrize("name", sorted(SHIPPED_TENSORS_SHA256))
def test_shipped_weights_name_the_panda_and_their_tensors_are_as_trained(name: str) -> None:
    from policies.vla.model import load_model, trained_robot

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

    from policies.vla.model import NanoVLA, NanoVLAConfig, load_model, save_model, trained_robot

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
    from policies.vla.data import data_robot

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
    from policies.qa.node import VideoQANode

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

@shipped
def test_eval_reports_the_share_of_unknown_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentrt.cli.__main__ import main

    torch.set_num_threads(1)
    out = tmp_path / "eval.json"
    assert main(["eval", "--tasks", "reach", "--decodings", "ar", "--clocks", "lockstep", "--episodes", "1",
                 "--reworded", "--json", str(out)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "unknown_word_share" in header
    rows = {r["split"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["held-out seeds"]["unknown_word_share"] == 0.0 and rows["held-out seeds"]["unknown_words"] == []
    assert rows["reworded"]["unknown_word_share"] == 0.25 and rows["reworded"]["unknown_words"] == ["tap"]  # tap the red cube


@pytest.mark.skipif(not (Path(__file__).parents[2] / "policies/weights/nano_qa.safetensors").exists(), reason="no nano QA weights")
def test_eval_qa_reports_the_share_of_unknown_words() -> None:
    from policies.qa.evaluate import evaluate_qa
    from policies.qa.videoqa import load_videoqa

    results, _ = evaluate_qa(load_videoqa("nano"), questions=6, reworded=True)
    unseen, reworded = (r.as_dict() for r in results)
    assert unseen["unknown_word_share"] == 0.0  # the training wording
    assert 0 < reworded["unknown_word_share"] < 0.5  # "which", "does", "see", ...
