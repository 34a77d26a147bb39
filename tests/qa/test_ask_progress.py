"""`agentrt ask --source FILE` says what it is doing while it loads and watches (it was silent for 30-120 s)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from agentrt.cli.__main__ import main
from agentrt.progress import ProgressLine, duration
from tests.streams.conftest import write_clip


def test_ask_about_a_file_shows_loading_and_watching_progress(tiny_smolvlm: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    clip = write_clip(tmp_path / "clip.mp4", count=24)
    code = main(["ask", "what changed?", "--source", str(clip), "--model", f"hf:{tiny_smolvlm}",
                 "--max-new-tokens", "2"])
    assert code == 0
    err = capsys.readouterr().err
    assert "loading the model (hf:" in err and re.search(r"model loaded in \d+\.\d s", err)
    watching = [line for line in err.splitlines() if line.startswith(f"watching file {clip}: ")]
    assert watching and re.match(rf"watching file {re.escape(str(clip))}: \d+/24 frames", watching[0])
    assert f"watched file {clip}: 24 frames read, 24 into the model" in err
    assert err.index("loading the model") < err.index("watching file") < err.index("24 frames watched")


def test_progress_line_estimates_the_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("agentrt.progress.time.monotonic", lambda: now[0])
    out = io.StringIO()
    progress = ProgressLine("eval", total=20, unit="episodes", stream=out, plain_every_s=10.0)
    progress.update(0)
    now[0] += 45.0
    progress.update(3)  # 15 s an episode: 17 left
    now[0] += 1.0
    progress.update(4)  # within 10 s of the last line: not shown
    now[0] += 240.0
    progress.update(20)  # the last one always shows
    lines = out.getvalue().splitlines()
    assert lines == ["eval: 0/20 episodes, 0 s so far",
                     "eval: 3/20 episodes, 45 s so far, about 4 min 15 s left",
                     "eval: 20/20 episodes, 4 min 46 s so far"]
    assert duration(3725) == "1 h 02 min"
