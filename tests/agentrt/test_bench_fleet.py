"""`agentrt bench fleet` in a smoke form: two robots and two server replicas through the CLI, the JSON rows complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrt.cli.__main__ import main
from policies.vla.policy import default_weights

pytestmark = pytest.mark.skipif(not default_weights("consistency").exists(), reason="no shipped weights")


def test_bench_fleet_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import agentrt.bench.fleet as fleet

    real = fleet.measure
    monkeypatch.setattr(fleet, "measure", lambda counts, servers, **_: real(counts, seconds=2.0, sim_seconds=1.0,
                                                                           servers=servers))  # shorter still
    out = tmp_path / "fleet.json"
    assert main(["bench", "fleet", "--quick", "--robots", "2", "--replicas", "2", "--json", str(out)]) == 0
    assert "chunks/s" in capsys.readouterr().out
    (row,) = json.loads(out.read_text())["rows"]
    assert row["robots"] == 2 and row["replicas"] == 2 and row["robots_served"] == 2 and row["chunks_per_s"] > 0
    assert row["control_hz"]["worst"] <= row["control_hz"]["mean"] and row["sim_only_hz"]["worst"] > 0
    assert row["latency_p50_ms"] <= row["latency_p99_ms"] and row["server_chunks_per_s"] > 0
    assert sum(int(size) * n for size, n in row["batch_sizes"].items()) > 0 and row["bad_requests"] == 0
    assert row["success_rate"] is None or 0 <= row["success_rate"] <= 1


def test_robots_is_for_bench_fleet_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sim", "--robots", "2"]) != 0
    assert "--robots" in capsys.readouterr().err
    assert main(["bench", "sim", "--replicas", "2"]) != 0
    assert "--replicas and --engine are for bench fleet only" in capsys.readouterr().err
