from __future__ import annotations

import json
from pathlib import Path

from agentrt.messages import Telemetry
from agentrt.telemetry import TelemetryCollector, parse_trace


def trace_message(i: int) -> Telemetry:
    t0 = 1_000_000_000 + i * 10_000_000
    points = {"0:capture": t0, "1:camera": t0 + 100_000, "2:policy": t0 + 600_000, "3:robot": t0 + 900_000 + i}
    return Telemetry("robot", i, t0, {"trace": 1.0, **{k: float(v) for k, v in points.items()}})


def test_parse_trace_orders_by_index() -> None:
    assert parse_trace({"trace": 1, "1:b": 20, "0:a": 10, "10:c": 30}) == [("a", 10), ("b", 20), ("c", 30)]


def test_summary_rates_budget_drops_restarts_across_pids(tmp_path: Path) -> None:
    collector = TelemetryCollector("demo")
    # camera: pid 1 runs 1 s at 100 Hz with 2 cycles over budget, then restarts as pid 2 for 1 s
    collector.on_telemetry(Telemetry("camera", 1, 0, {"pid": 1, "ticks": 0, "target_hz": 100}))
    collector.on_telemetry(Telemetry("camera", 2, 10**9, {"pid": 1, "ticks": 100, "over_budget": 2,
                                                          "target_hz": 100, "out.frames.dropped": 1}))
    collector.on_restart("camera", "killed by SIGKILL")
    collector.on_telemetry(Telemetry("camera", 1, 2 * 10**9, {"pid": 2, "ticks": 0, "target_hz": 100}))
    collector.on_telemetry(Telemetry("camera", 2, 3 * 10**9, {"pid": 2, "ticks": 100, "target_hz": 100}))
    collector.on_telemetry(Telemetry("policy", 1, 10**9, {"pid": 3, "in.frames.skipped": 4}))
    for i in range(50):
        collector.on_telemetry(trace_message(i))
    summary = collector.summary()
    assert summary["nodes"]["camera"]["rate_hz"] == 100.0
    assert summary["over_budget_share"] == 2 / 200
    assert summary["dropped"] == 5
    assert summary["restarts"] == 1
    assert summary["traces"] == 50
    assert abs(summary["latency_ms"]["p50"] - 0.900025) < 1e-3
    assert summary["hops_us"]["camera->policy"]["p50"] == 500.0
    assert "camera->policy" in summary["hops_us"] and "capture->camera" not in summary["hops_us"]
    line = collector.status_line()
    assert "camera 100.0/100 Hz" in line and "restarts 1" in line
    json_path, png_path = collector.write_report(tmp_path)
    report = json.loads(json_path.read_text())
    assert report["traces"] == 50 and "machine" in report
    assert png_path is not None and png_path.read_bytes()[:4] == b"\x89PNG"
    traces = [json.loads(line) for line in (tmp_path / report["traces_file"]).read_text().splitlines()]
    assert len(traces) == 50 and [hop for hop, _ in traces[0]][0] == "capture"
    assert all(t1 <= t2 for trace in traces for (_, t1), (_, t2) in zip(trace, trace[1:], strict=False))


def test_report_without_traces_has_no_plot(tmp_path: Path) -> None:
    json_path, png_path = TelemetryCollector("empty").write_report(tmp_path)
    assert json_path.exists() and png_path is None


def test_bad_torn_and_refused_counts_reach_the_report_not_just_dropped(tmp_path: Path) -> None:
    collector = TelemetryCollector("counts")
    collector.on_telemetry(Telemetry("camera", 1, 10**9, {"pid": 1, "out.frames.sent": 90, "out.frames.refused": 5}))
    collector.on_telemetry(Telemetry("policy", 1, 10**9, {"pid": 2, "in.frames.received": 50, "in.frames.bad": 20,
                                                          "in.frames.torn": 2, "in.frames.skipped": 3,
                                                          "bad.wrong_robot": 4, "dropped.stale_chunk": 1}))
    collector.on_restart("policy", "exit code 1")  # counts of the next process add to the first one's
    collector.on_telemetry(Telemetry("policy", 1, 2 * 10**9, {"pid": 3, "in.frames.bad": 1, "in.frames.refused": 1}))
    summary = collector.summary()
    assert (summary["bad"], summary["dropped"], summary["refused"]) == (25, 6, 6)
    policy = summary["nodes"]["policy"]
    assert (policy["bad"], policy["dropped"], policy["refused"]) == (25, 6, 1)
    assert policy["counts"] == {"bad.wrong_robot": 4, "dropped.stale_chunk": 1, "in.frames.bad": 21,
                                "in.frames.refused": 1, "in.frames.skipped": 3, "in.frames.torn": 2}
    line = collector.status_line()
    assert "dropped 6" in line and "bad 25" in line and "refused 6" in line
    assert collector.count_lines() == [
        "camera: refused 5 (out.frames.refused 5)",
        "policy: dropped 6, bad 25, refused 1 (bad.wrong_robot 4, dropped.stale_chunk 1, in.frames.bad 21, "
        "in.frames.refused 1, in.frames.skipped 3, in.frames.torn 2)",
    ]
    report = json.loads(collector.write_report(tmp_path)[0].read_text())
    assert (report["bad"], report["dropped"], report["refused"]) == (25, 6, 6)
    assert report["nodes"]["policy"]["counts"]["in.frames.bad"] == 21
    assert "refused" not in TelemetryCollector("one host").status_line()  # no CURVE, no noise
