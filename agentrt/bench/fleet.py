"""`agentrt bench fleet`: one policy server, N simulated robots; what batching buys as the fleet grows.

    agentrt bench fleet --robots 1 2 4 8 --json runs/bench-fleet.json
    agentrt bench fleet --quick

Per N, one row (the issue's field names): the server (``policies.vla.server``, consistency decoding, 2 ms
window) runs in a process of its own; each robot is a process running reach episodes back to back in
lockstep (a SimEnv at 64 px, its client on board: ``policies.vla.fleet.FleetSource``) for a fixed time.

- ``chunks_per_s``: chunks all robots received per second (aggregate);
- ``control_hz`` {mean, worst}: each robot's control steps per second. Lockstep runs as fast as the
  loop allows, so >= 20 says the robot could keep a 20 Hz real-time clock with this many robots;
- ``sim_only_hz`` {mean, worst}: the same N robots driven by the scripted expert, no policy: the
  simulators' own ceiling on this machine (where it drops below 20 Hz the cores are saturated by sims alone);
- ``latency_p50_ms`` / ``latency_p99_ms``: capture -> chunk at the robot;
- ``batch_sizes``: rows per forward -> forwards; ``success_rate``: episodes that succeeded / finished.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import statistics
import tempfile
import threading
import time
from typing import Any

from agentrt.bench.report import percentile, print_rows

__all__ = ["run", "print_table", "measure"]

log = logging.getLogger(__name__)

ROBOTS = (1, 2, 4, 8)
SEED = 300_000  # robot i runs seeds SEED + 1000 i, ...: every robot its own scenes and instructions
START_TIMEOUT_S = 120.0


def run(quick: bool, robots: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The table's rows; ``quick`` (1 and 2 robots, short runs) finishes within about a minute on 2 cores."""
    counts = robots or ((1, 2) if quick else ROBOTS)
    return measure(counts, seconds=4.0 if quick else 20.0, sim_seconds=2.0 if quick else 8.0)


def measure(counts: tuple[int, ...], *, seconds: float, sim_seconds: float) -> dict[str, Any]:
    from agentrt.progress import ProgressLine

    progress = ProgressLine("bench fleet", total=len(counts), unit="fleets", tty_every_s=0.0, plain_every_s=0.0)
    rows = []
    for done, n in enumerate(counts):
        progress.update(done, note=f"{n} robot(s): policy server, then simulators alone")
        row = _fleet(n, seconds)
        sim = _fleet(n, sim_seconds, expert=True)
        row["sim_only_hz"] = sim["control_hz"]
        rows.append(row)
    progress.update(len(counts), note="done")
    progress.done(f"bench fleet: {', '.join(str(n) for n in counts)} robots")
    result: dict[str, Any] = {"rows": rows, "seconds": seconds, "cpus": os.cpu_count(),
                              "load_average": list(os.getloadavg())}
    first = rows[0]
    if first["chunks_per_s"]:
        result["chunks_per_s_vs_first"] = {str(r["robots"]): r["chunks_per_s"] / first["chunks_per_s"] for r in rows}
    return result


def _fleet(n: int, seconds: float, *, expert: bool = False) -> dict[str, Any]:
    """Run ``n`` robots for ``seconds`` after every one is ready; -> the row (server stats unless ``expert``)."""
    ctx = mp.get_context("spawn")  # no torch or zmq state copied into the children
    folder = tempfile.mkdtemp(prefix="agentrt-fleet-")
    endpoint = f"ipc://{folder}/server"
    stop, results = ctx.Event(), ctx.Queue()
    ready = ctx.Barrier(n + 1 + (0 if expert else 1))
    server = None
    if not expert:
        server = ctx.Process(target=_serve, args=(endpoint, ready, stop, results), name="fleet-server")
        server.start()
    robots = [ctx.Process(target=_robot, args=(i, endpoint, seconds, ready, results, expert), name=f"robot{i}")
              for i in range(n)]
    for p in robots:
        p.start()
    try:
        ready.wait(START_TIMEOUT_S)
        got = [results.get(timeout=seconds + START_TIMEOUT_S) for _ in range(n)]
        stop.set()
        served = results.get(timeout=30) if server is not None else {}
    finally:
        stop.set()
        for p in [*robots, *([server] if server is not None else [])]:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
        shutil.rmtree(folder, ignore_errors=True)
    return _row(n, got, served)


def _row(n: int, robots: list[dict[str, Any]], served: dict[str, Any]) -> dict[str, Any]:
    elapsed = max(r["elapsed_s"] for r in robots)
    hz = [r["steps"] / r["elapsed_s"] for r in robots]
    latencies = sorted(x for r in robots for x in r["latencies_ms"])
    finished = sum(r["episodes"] for r in robots)
    return {
        "robots": n,
        "chunks_per_s": sum(r["chunks"] for r in robots) / elapsed,
        "control_hz": {"mean": statistics.fmean(hz), "worst": min(hz)},
        "latency_p50_ms": percentile(latencies, 50) if latencies else None,
        "latency_p99_ms": percentile(latencies, 99) if latencies else None,
        "batch_sizes": served.get("batches", {}),
        "success_rate": sum(r["successes"] for r in robots) / finished if finished else None,
        "episodes": finished,
        "robots_served": sum(r["chunks"] > 0 for r in robots),
        "bad_requests": sum(served.get("bad", {}).values()),
    }


def _serve(endpoint: str, ready: Any, stop: Any, results: Any) -> None:
    from policies.vla.server import PolicyServer, PolicyServerConfig

    server = PolicyServer(PolicyServerConfig(endpoint=endpoint, decoding="consistency", device="cpu"))
    server.open()
    try:
        ready.wait(START_TIMEOUT_S)
        while not stop.is_set():
            server.serve(timeout_ms=20)
    finally:
        server.close()
    results.put(server.stats.as_dict())


def _robot(index: int, endpoint: str, seconds: float, ready: Any, results: Any, expert: bool) -> None:
    """One robot: reach episodes back to back, lockstep, until ``seconds`` after the start."""
    from policies.vla.fleet import FleetClient, FleetSource
    from sims.camera import SceneCameraConfig
    from sims.clock import make_clock
    from sims.env import SimEnv, SimEnvConfig
    from sims.loop import ExpertSource, run_episode

    camera = SceneCameraConfig(width=64, height=64, renderer="tiny")
    client = None if expert else FleetClient(endpoint, f"robot{index}")
    out: dict[str, Any] = {"steps": 0, "episodes": 0, "successes": 0, "chunks": 0, "latencies_ms": []}
    with SimEnv(SimEnvConfig(task="reach", camera=camera)) as env:
        env.reset(seed=SEED)  # the first reset and render load everything: not in the measured time
        env.render("scene")
        source: Any = ExpertSource(env) if client is None else FleetSource(client, env)
        ready.wait(START_TIMEOUT_S)
        stop = threading.Event()
        timer = threading.Timer(seconds, stop.set)
        started = time.monotonic()
        timer.start()
        episode = 0
        while not stop.is_set():
            result = run_episode(env, make_clock("lockstep", 20.0), source, seed=SEED + 1000 * index + episode, stop=stop)
            out["steps"] += result.steps
            episode += 1
            if not stop.is_set():  # an episode cut by the end of the run did not finish: no verdict
                out["episodes"] += 1
                out["successes"] += int(result.success)
        out["elapsed_s"] = time.monotonic() - started
        timer.cancel()
    if isinstance(source, FleetSource):
        out["chunks"], out["latencies_ms"] = source.chunks, source.latencies_ms
    if client is not None:
        client.close()
    results.put(out)


def print_table(result: dict[str, Any]) -> None:
    rows = [[r["robots"], r["chunks_per_s"], r["control_hz"]["mean"], r["control_hz"]["worst"],
             r["sim_only_hz"]["mean"], r["sim_only_hz"]["worst"], r["latency_p50_ms"], r["latency_p99_ms"],
             " ".join(f"{k}:{v}" for k, v in r["batch_sizes"].items()), r["success_rate"]] for r in result["rows"]]
    load = ", ".join(f"{x:.2f}" for x in result["load_average"])
    print_rows(f"bench fleet: one policy server, N robots in lockstep ({result['cpus']} CPUs, load {load})",
               ["robots", "chunks/s", "Hz mean", "Hz worst", "sims alone Hz", "sims worst Hz", "p50 ms", "p99 ms",
                "batch sizes", "success"], rows)
