"""`agentrt eval` counts its episodes on stderr, with the whole run's total (it ran ~15 min with no word)."""

from __future__ import annotations

import pytest

from agentrt.cli.__main__ import main


def test_eval_shows_episodes_done_of_the_whole_run(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--tasks", "reach", "--decodings", "consistency", "--clocks", "lockstep", "realtime",
                 "--episodes", "1"])
    assert code == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert "eval: 0/2 episodes, 0 s so far" in lines  # the total is known from the start
    assert any(line.startswith("eval: 2/2 episodes, reach consistency realtime, ") for line in lines)
    assert any(line.startswith("eval: 2 episodes in ") for line in lines)
    assert "eval:" not in out  # the table stays clean on stdout
    assert sum(line.startswith("reach ") for line in out.splitlines()) == 2
