"""The `agentrt` command: help, one-line errors, the demo end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt.cli.__main__ import main


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
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["chunks_executed"] > 0
    assert report["summary"]["bad_messages"] == 0
    assert (tmp_path / "latency.png").stat().st_size > 1000


def test_unwritable_paths_are_one_line_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "transport", "--quick", "--json", str(tmp_path)]) == 2  # a directory: refused before running
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a directory" in err[0]
