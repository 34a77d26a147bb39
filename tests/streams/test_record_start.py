"""launch/stream_record.yaml records the stream from its first frame (it started at frame ~25)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.launch import load_launch
from agentrt.supervisor import Supervisor
from streams import read_sidecar

ROOT = Path(__file__).resolve().parents[2]


def test_stream_record_launch_records_from_the_first_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_RUN_DIR", str(tmp_path / "run"))
    out = tmp_path / "rec.mp4"
    spec = load_launch(ROOT / "launch" / "stream_record.yaml", [f"recorder.path={out}"])
    supervisor = Supervisor(spec, output=lambda line: None)
    assert supervisor.run(duration_s=3.0) == 0
    seqs = [seq for seq, _ in read_sidecar(out)]
    assert len(seqs) > 10
    assert seqs[0] == 0, f"the recording starts at frame {seqs[0]} of the stream"
