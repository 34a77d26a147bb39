"""`agentrt ask` in-process, the QA launch files, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agentrt.cli.__main__ import main
from agentrt.launch import load_launch

REPO = Path(__file__).resolve().parents[2]


def test_ask_watches_a_source_then_streams_an_answer(tiny_smolvlm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "what is the robot holding?", "--source", "synthetic:160x120@30", "--seconds", "1",
                 "--ingest-hz", "0", "--model", f"hf:{tiny_smolvlm}", "--max-new-tokens", "4"])
    captured = capsys.readouterr()
    assert code == 0
    assert "frames watched; first token" in captured.err


@pytest.mark.parametrize("argv, expected", [
    (["ask", "what?", "--source", "synthetic", "--model", "nano:/nowhere/nano_qa.safetensors"], "nano QA"),
    (["ask", "what?", "--source", "synthetic", "--model", "hf:/nowhere"], "not a Hugging Face checkpoint"),
    (["ask", "what?"], "give a running stream"),
    (["ask", "what?", "--server", "http://127.0.0.1:9"], "cannot reach"),
    (["serve", "--model", "gpt:x"], "unknown QA model"),
])
def test_user_errors_are_one_line(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("name", ["camera_qa.yaml", "sim_qa.yaml"])
def test_launch_files_validate(name: str) -> None:
    spec = load_launch(REPO / "launch" / name)
    assert {"qa", "web"} <= set(spec.nodes)


def test_serve_starts_the_graph_of_camera_qa() -> None:
    from agentrt.cli.serve import SERVE_LAUNCH

    assert SERVE_LAUNCH.resolve() == (REPO / "launch" / "camera_qa.yaml").resolve()  # one file, not a copy
    assert not list(REPO.glob("agentrt/**/*.yaml"))
    camera_qa = yaml.safe_load((REPO / "launch" / "camera_qa.yaml").read_text())
    assert set(camera_qa["nodes"]) == {"camera", "qa", "web"}


def test_ask_reads_a_recording_to_its_end(tiny_smolvlm: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    from agentrt.testing import fake_frame

    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), fake_frame(i).image)
    code = main(["ask", "what changed?", "--source", str(tmp_path), "--every", "2", "--model", f"hf:{tiny_smolvlm}",
                 "--max-new-tokens", "3"])
    assert code == 0
    assert "3 frames watched" in capsys.readouterr().err
