"""The pieces of `agentrt bench streams`, on a tiny clip (the benchmark itself runs from the CLI)."""

from __future__ import annotations

from pathlib import Path

from agentrt.bench import streams as bench
from agentrt.transport import Publisher, Subscriber


def test_bench_pieces_agree_on_a_small_clip(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    codec = bench.write_clip(clip, frames=20, width=160, height=128)
    assert codec in ("libx264", "mpeg4")
    assert bench._decode_only(clip) > 0 and bench._decode_naive(clip) > 0
    address = f"ipc://{tmp_path / 'frames'}"
    with Subscriber(address) as sub, Publisher(address) as pub:
        assert bench._through_source(clip) > 0
        assert bench._through_source(clip, pub) > 0
        assert pub.stats.sent == 20
        assert sub is not None


def test_print_table_handles_a_result(capsys) -> None:  # type: ignore[no-untyped-def]
    result = {"publish_fps": 90.0, "decode_fps": 100.0, "source_fps": 95.0, "naive_decode_fps": 60.0, "overhead_ratio": 100 / 90,
              "target_overhead_ratio": 1.2, "latency_p50_ms": 1.0, "latency_p99_ms": 5.0, "latency_max_ms": 6.0,
              "latency_n": 100, "latency_source_dropped": 0, "rounds": 3, "frames": 300, "width": 640,
              "height": 480, "fps": 30, "codec": "libx264"}
    bench.print_table(result)
    assert "meets the target" in capsys.readouterr().out
