"""`agentrt eval qa`'s table and JSON: a split nobody asked about has no accuracy, not 0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import policies.qa.evaluate as qa_eval
from agentrt.cli.__main__ import main


def test_a_split_with_no_questions_is_not_reported_as_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    def no_visible_moment(model: Any, **kwargs: Any) -> tuple[qa_eval.QAEvalResult, dict[str, list[int]]]:
        # every moment of the episodes had an object hidden by the arm: nothing was asked
        return qa_eval.QAEvalResult("sim episodes"), {}

    monkeypatch.setattr(qa_eval, "evaluate_qa_sim", no_visible_moment)
    out = tmp_path / "qa.json"
    assert main(["eval", "qa", "--questions", "5", "--sim-episodes", "1", "--tasks", "reach",
                 "--json", str(out)]) == 0
    printed, err = capsys.readouterr()
    assert "eval qa: 5/5 questions" in err  # progress shows off a terminal too (stderr)
    table = printed[printed.index("accuracy (questions)"):]
    assert "0.000 (0)" not in table and "(0)" not in table
    assert "n/a (no questions)" in table
    assert "reach n/a (no questions)" in printed  # the per-task line names the task it could not score
    doc = json.loads(out.read_text())
    sim = next(s for s in doc["splits"] if s["split"] == "sim episodes")
    assert sim["accuracy"] is None and sim["questions"] == 0
    assert doc["sim_tasks"] == {"reach": {"accuracy": None, "questions": 0}}
    assert doc["splits"][0]["questions"] == 5 and doc["splits"][0]["accuracy"] is not None
