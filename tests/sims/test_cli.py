"""`agentrt sim` and `agentrt bench sim` from the command line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrt.bench import sim as bench_sim
from agentrt.cli.__main__ import main


def test_sim_runs_episodes_prints_results_and_writes_video_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "push.mp4"
    out = tmp_path / "push.json"
    code = main(["sim", "push", "--episodes", "2", "--size", "32", "--renderer", "tiny", "--video", str(video), "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "episode   0" in printed and "episode   1" in printed
    assert "push: 2/2 succeeded" in printed
    assert (tmp_path / "push-ep000.mp4").stat().st_size > 0 and (tmp_path / "push-ep001.mp4").stat().st_size > 0
    av = pytest.importorskip("av")
    with av.open(str(tmp_path / "push-ep000.mp4")) as container:  # the viewer camera, not the 32 px policy camera
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (384, 288)
    document = json.loads(out.read_text())
    assert document["summary"]["success_rate"] == 1.0 and len(document["episodes"]) == 2


def test_sim_gui_without_a_display_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["sim", "reach", "--gui"]) == 2
    err = capsys.readouterr().err.strip()
    assert "display" in err and "\n" not in err


def test_sim_unknown_task_and_gripperless_robot(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "fold_laundry"]) == 2
    assert "expected one of reach, push, pick_place" in capsys.readouterr().err
    assert main(["sim", "pick_place", "--robot", "kuka_iiwa"]) == 2
    assert "needs a gripper" in capsys.readouterr().err


def test_bench_sim_figures_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    result = bench_sim.measure(physics_steps=100, renders=1, loop_seconds=0.3, sizes=(32, 48))
    assert result["physics_steps_per_s"] > 0
    assert set(result["render_ms"]) == {"32", "48"} and all(v > 0 for v in result["render_ms"].values())
    assert result["loop_jitter_p99_ms"] >= 0 and result["loop_ticks"] > 0
    bench_sim.print_table(result)
    assert "physics steps" in capsys.readouterr().out


def test_bench_sim_viewer_figures_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    from agentrt.bench.sim_viewer import VIEWER_MODES, measure_viewer, print_viewer_table

    result = measure_viewer(rounds=1, task="reach")
    for figures in (result["viewer_lockstep_step_ms"], result["viewer_realtime_hz"]):
        assert set(figures) == set(VIEWER_MODES) and all(v > 0 for v in figures.values())
    assert result["viewer_frames"]["inline"] > 0 and result["viewer_frames"]["process"] > 0
    print_viewer_table(result)
    assert "384x288 episode video" in capsys.readouterr().out


def test_docs_and_sim_help_quote_the_same_instruction_per_task(capsys: pytest.CaptureFixture[str]) -> None:
    from sims.tasks import TASKS

    with pytest.raises(SystemExit):
        main(["sim", "--help"])
    help_text = capsys.readouterr().out
    root = Path(__file__).resolve().parents[2]
    readme, sims_doc = (root / "README.md").read_text(), (root / "docs" / "sims.md").read_text()
    for name, task in TASKS.items():
        assert f'"{task.example}"' in help_text, name
        assert f'{name} ("{task.example}")' in readme, name
        assert f'| `{name}` | "{task.example}"' in sims_doc, name
        assert ", ".join(task.targets[:-1]) + f" or {task.targets[-1]}" in help_text, name  # "a cube or cylinder"
        shape = task.example.split(" the ", 1)[1].split()[1]  # "... the green cube ..." -> cube
        assert shape in task.targets, name
