"""The VideoLLM node in-process (MockNode): frames in, questions in, streamed answers out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentrt.errors import ConfigError, ModelError
from agentrt.messages import Answer, Frame, Query
from agentrt.node import check_node
from agentrt.testing import MockNode, fake_frame
from policies.qa_node import VideoQANode, load_qa_model, to_rgb


def _answers(out: list[tuple[str, object]]) -> list[Answer]:
    assert all(name == "answers" for name, _ in out)
    return [message for _, message in out if isinstance(message, Answer)]


def test_answers_stream_in_order_with_done_last(tiny_smolvlm: Path) -> None:
    check_node(VideoQANode)
    harness = MockNode(VideoQANode, params={"model": f"hf:{tiny_smolvlm}", "max_new_tokens": 6})
    inputs = [("frames", fake_frame(i)) for i in range(3)]
    inputs += [("queries", Query("q1", 0, 0, "what is the robot holding?")), ("frames", fake_frame(3)),
               ("queries", Query("q2", 1, 0, "what changed?"))]
    answers = _answers(harness.run(inputs=inputs))
    for qid in ("q1", "q2"):
        mine = [a for a in answers if a.query_id == qid]
        assert [a.seq for a in mine] == list(range(len(mine)))
        assert mine[-1].done and not mine[-1].error
        assert not any(a.done for a in mine[:-1])
    assert [a.query_id for a in answers].index("q2") > max(i for i, a in enumerate(answers) if a.query_id == "q1")
    assert harness.node.model.memory()["frames"] == 4  # type: ignore[attr-defined]


def test_a_failed_query_is_an_error_answer_and_the_node_goes_on(tiny_smolvlm: Path) -> None:
    harness = MockNode(VideoQANode, params={"model": f"hf:{tiny_smolvlm}", "max_new_tokens": 3})
    answers = _answers(harness.run(inputs=[("frames", fake_frame(0)), ("queries", Query("bad", 0, 0, "  ")),
                                           ("queries", Query("good", 1, 0, "what?"))]))
    bad = [a for a in answers if a.query_id == "bad"]
    assert len(bad) == 1 and bad[0].done and "empty question" in bad[0].error
    assert [a for a in answers if a.query_id == "good"][-1].done


def test_config_and_model_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected nano"):
        MockNode(VideoQANode, params={"model": "gpt:x"})
    with pytest.raises(ModelError, match="not a Hugging Face checkpoint folder") as missing:
        load_qa_model(f"hf:{tmp_path / 'none'}")
    assert "\n" not in str(missing.value)


def test_to_rgb_handles_pixel_formats() -> None:
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 255  # blue in BGR order
    assert to_rgb(Frame("s", 0, 0, bgr, pixel_format="bgr"))[0, 0].tolist() == [0, 0, 255]
    gray = np.full((2, 2), 7, np.uint8)
    assert to_rgb(Frame("s", 0, 0, gray)).shape == (2, 2, 3)
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert to_rgb(Frame("s", 0, 0, rgba)).shape == (2, 2, 3)
