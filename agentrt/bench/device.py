"""`agentrt bench device`: the device check. `bench vla`, `bench engine` and `bench qa` on one device, one table.

    agentrt bench device --device cuda --json runs/bench-device.json    # the GPU check (make bench-device)
    agentrt bench device --device cuda --dtype bfloat16
    agentrt bench device --device cpu --quick                           # the same three, reduced

It runs the three benches one after another in this process, each with the
same ``--device`` and ``--dtype`` (and ``--quick``), shows on stderr which one
runs and how long the check has taken, then prints one table of their headline
figures. The JSON holds that table (``summary``), every bench's full result
under its name (``vla``, ``engine``, ``qa``), the seconds each took
(``wall_s``) and, as every bench JSON does, the device, dtype and accelerator.

Sized for a GPU machine: the full check is meant to finish within 8 minutes on
one GPU (estimated at about 3 from the H200 figures in docs/engine.md). On a 2-core CPU the full `bench qa` alone takes about 10 minutes (its
135M-parameter model ingests 900 frames), so there use ``--quick``. It needs
torch, numpy, safetensors and transformers, not pyzmq, PyAV or PyBullet:
without PyBullet, `bench vla` replays its recorded observations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agentrt.bench.report import print_rows

__all__ = ["run", "print_table", "summary", "PARTS"]

PARTS = ("vla", "engine", "qa")  # the benches checked, in order: each an agentrt.bench module


def run(quick: bool, device: str = "auto", dtype: str = "float32",
        parts: dict[str, Callable[..., dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Each part's ``run(quick, device=, dtype=)`` in turn; ``parts`` replaces the benches (a test's)."""
    import importlib

    from agentrt.progress import ProgressLine, duration

    benches = parts or {name: importlib.import_module(f"agentrt.bench.{name}").run for name in PARTS}
    progress = ProgressLine("bench device", total=len(benches), unit="benches", tty_every_s=0.0, plain_every_s=0.0)
    result: dict[str, Any] = {"parts": list(benches), "on": f"{device}, {dtype}", "wall_s": {}}
    started = time.perf_counter()
    for i, (name, bench) in enumerate(benches.items()):
        progress.update(i, note=f"bench {name} on {device}, {dtype}{' (quick)' if quick else ''}")
        t0 = time.perf_counter()
        result[name] = bench(quick, device=device, dtype=dtype)
        result["wall_s"][name] = time.perf_counter() - t0
    result["wall_s"]["total"] = time.perf_counter() - started
    progress.update(len(benches), note="done")
    progress.done(f"bench device: {', '.join(benches)} in {duration(result['wall_s']['total'])}")
    result["summary"] = [{"bench": b, "figure": f, "value": v} for b, f, v in summary(result)]
    return result


def summary(result: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The headline figures of whichever parts ran: (bench, figure, value)."""
    rows: list[tuple[str, str, Any]] = []
    vla = result.get("vla")
    if vla:
        for name, f in vla["modes"].items():
            rows.append(("vla", f"{name}: decode ms / passes / x AR / same as AR",
                         f"{f['decode_ms']:.2f} / {f['passes']:.1f} / {f['speedup']:.2f} / {f['same_as_ar']:.2f}"))
    engine = result.get("engine")
    if engine:
        for e in engine["vit_cache"]:
            rows.append(("engine", f"ViT cache {e['encoder']} N={e['interval']}: full / cached ms, speed-up",
                         f"{e['ms_full']:.2f} / {e['ms_cached']:.2f}, {e['speedup']:.2f}x"))
        sf = engine["slowfast"]
        rows.append(("engine", f"slow-fast {sf['frames_slowfast']} frames vs full {sf['frames_base']}: cost ratio",
                     sf["cost_ratio"]))
        d = engine["decoding"]
        rows.append(("engine", f"decoding {d['block_tokens']} tokens (trained): AR / Jacobi ms, exact",
                     f"{d['ar_ms']:.2f} / {d['jacobi_ms']:.2f}, {d['speedup']:.2f}x, {d['exact']}"))
    qa = result.get("qa")
    if qa:
        ttft = " / ".join(f"{v:.1f}" for v in qa["ttft_ms"].values())
        rows.append(("qa", f"first token ms at {' / '.join(qa['ttft_ms'])} of stream", ttft))
        rows.append(("qa", "answer tokens / s", qa["tokens_per_s"]))
        rows.append(("qa", "ingest fps: cache / no cache (fresh frames)",
                     f"{qa.get('ingest_fps_same_frames', float('nan')):.1f} / {qa['ingest_fps_no_cache']:.1f}"))
    for name, seconds in result.get("wall_s", {}).items():
        rows.append(("time", f"{name} s", seconds))
    return rows


def print_table(result: dict[str, Any]) -> None:
    print_rows(f"device check on {result['on']}: {', '.join(result['parts'])}", ["bench", "figure", "value"],
               [[r["bench"], r["figure"], r["value"]] for r in result["summary"]])
