"""The `agentrt` command: help, one-line errors, the demo end to end."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import agentrt
from agentrt.cli.__main__ import build_parser, main


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "bench" in out


def test_unknown_benchmark_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nonsense"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown benchmark 'nonsense'" in err[0] and "transport" in err[0]


def test_bad_demo_option_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--transport", "--duration", "-1"]) == 2
    assert "must be > 0" in capsys.readouterr().err
    assert main(["demo", "--episodes", "0"]) == 2
    assert "--episodes must be >= 1" in capsys.readouterr().err


def test_transport_demo_runs_end_to_end_and_leaves_a_report(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agentrt.cli", "demo", "--transport", "--duration", "1.5", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env={"AGENTRT_RUN_DIR": str(tmp_path / "run"),
                                                         "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["chunks_executed"] > 0
    assert summary["bad_messages"] == 0
    assert (tmp_path / "latency.png").stat().st_size > 1000
    report = json.loads((tmp_path / "report.json").read_text())  # the supervisor's telemetry of pipeline_demo.yaml
    assert report["name"] == "pipeline_demo" and set(report["nodes"]) == {"camera", "policy", "robot"}
    assert report["nodes"]["robot"]["received"] == summary["chunks_executed"]


def test_unwritable_paths_are_one_line_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "transport", "--quick", "--json", str(tmp_path)]) == 2  # a directory: refused before running
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a directory" in err[0]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"agentrt {metadata.version('agentrt')}"
    assert agentrt.__version__ == metadata.version("agentrt")


def test_every_option_says_what_it_does() -> None:
    missing = [f"{name} {action.option_strings or action.dest}" for name, sub in _subcommands().items()
               for action in sub._actions if not action.help and not isinstance(action, argparse._HelpAction)]
    assert not missing, missing


def test_one_spelling_per_option() -> None:
    visible = {name: {s for a in sub._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
               for name, sub in _subcommands().items()}
    for name in ("run", "node", "stream", "record"):
        assert "--no-status" in visible[name] and "--quiet" not in visible[name], name
    for name in ("train", "distill", "train-qa"):
        assert "--batch-size" in visible[name] and "--batch" not in visible[name], name
    everywhere = set().union(*visible.values())
    assert not {"--quiet", "--batch"} & everywhere
    args = build_parser().parse_args(["train-qa", "--batch", "4"])  # the old spellings still work
    assert args.batch_size == 4
    assert build_parser().parse_args(["stream", "synthetic", "--quiet"]).no_status


def test_negative_seeds_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with_seed = [name for name, sub in _subcommands().items() if any("--seed" in a.option_strings for a in sub._actions)]
    assert {"sim", "eval", "collect", "train", "distill", "demo"} <= set(with_seed)
    needs = {"bench": ["qa"]}
    for name in with_seed:
        with pytest.raises(SystemExit) as exit_info:
            main([name, *needs.get(name, []), "--seed", "-1"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == f"agentrt {name}: error: argument --seed: expected an integer >= 0, got -1", err
        assert "Traceback" not in "\n".join(err)


def test_ctrl_c_while_the_commands_load_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(name: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    try:
        code = main(["run", "x.yaml"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C while loading the subcommands escaped main(): a traceback")
    assert code == 130
    assert capsys.readouterr().err.strip().splitlines() == ["agentrt: interrupted"]
