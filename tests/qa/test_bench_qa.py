"""`agentrt bench qa` on a tiny model and a sparse stream: the issue's fields, bounded memory, the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.bench import qa as bench


def test_bench_qa_fields_on_a_tiny_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = bench.build_bench_checkpoint(tmp_path / "tiny", "tiny")
    result = bench.measure(f"hf:{folder}", model_label="tiny", stream_hz=0.1, no_cache_frames=3, max_new_tokens=4)
    for key in ("ttft_ms", "rss_mb"):
        assert set(result[key]) == {"1min", "5min", "30min"}
    assert result["frames"] == 180
    assert result["ingest_fps"] > 0 and result["ingest_fps_no_cache"] > 0
    assert result["window_tokens"]["30min"] <= 512 + 128  # window + prompt sinks + the newest frame (tail)
    bench.print_table(result)
    assert "time to first token" in capsys.readouterr().out
