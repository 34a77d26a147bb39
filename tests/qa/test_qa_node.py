"""The VideoLLM node in-process (MockNode): frames in, questions in, streamed answers out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentrt.errors import ConfigError, ModelError
from agentrt.messages import Answer, Frame, Query
from agentrt.node import check_node
from agentrt.testing import MockNode, fake_frame
from policies.qa.node import VideoQANode, load_qa_model


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



def test_the_model_sees_rgb_whatever_the_camera_sends_and_never_a_torn_frame(tiny_smolvlm: Path) -> None:
    from agentrt.messages import ShmRef

    harness = MockNode(VideoQANode, params={"model": f"hf:{tiny_smolvlm}"})
    harness.setup()
    seen: list[np.ndarray] = []
    harness.node.model.ingest = lambda image, t_ns: seen.append(np.array(image))  # type: ignore[method-assign]
    rgb = fake_frame(0).image
    torn = Frame("fake", 3, 3, rgb, "rgb", shm=ShmRef("agentrt-1-x-0", 0, 1), slot_intact=lambda: False)
    alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    harness.run(inputs=[("frames", Frame("fake", 0, 0, rgb)), ("frames", Frame("fake", 1, 1, rgb[..., ::-1].copy(), "bgr")),
                        ("frames", Frame("fake", 2, 2, np.concatenate([rgb[..., ::-1], alpha], axis=2), "bgra")),
                        ("frames", torn)])
    assert len(seen) == 3 and all(np.array_equal(image, rgb) for image in seen)
    assert harness.node.stats.counters["dropped.torn_frames"] == 1
