"""Out of domain, never silently: words a model does not know, and what eval reports."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agentrt.messages import Answer, Query
from agentrt.testing import MockNode, fake_frame


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
