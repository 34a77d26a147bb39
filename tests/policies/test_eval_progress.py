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


def test_eval_gives_a_row_per_early_exit_setting(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """Several caps and tolerances: one consistency row per pair, each decoded under its own cap."""
    import json

    out = tmp_path / "eval.json"
    code = main(["eval", "--tasks", "reach", "--decodings", "ar", "consistency", "--clocks", "lockstep",
                 "--episodes", "1", "--seed", "100000", "--max-iterations", "1", "4", "--tolerance", "0",
                 "--json", str(out)])
    assert code == 0
    rows = {row["decoding"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"ar", "consistency c1 t0", "consistency c4 t0"}
    assert rows["consistency c1 t0"]["iterations"] == 1.0  # the cap binds on every chunk
    assert 1.0 < rows["consistency c4 t0"]["iterations"] <= 4.0
    assert rows["ar"]["iterations"] == 31.0  # one pass per token after the prefill's first
    assert "consistency c1 t0" in capsys.readouterr().out
    # how each episode ended, per episode and counted per row
    for row in rows.values():
        assert sum(row["outcomes"].values()) == 1 and row["per_episode"][0]["outcome"] in row["outcomes"]
        assert (row["per_episode"][0]["outcome"] == "success") == row["per_episode"][0]["success"]
