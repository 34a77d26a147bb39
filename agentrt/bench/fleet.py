"""`agentrt bench fleet`: one policy server, N simulated robots; what batching buys as the fleet grows.

    agentrt bench fleet --robots 1 2 4 8 --json runs/bench-fleet.json
    agentrt bench fleet --quick
    agentrt bench fleet --robots 4 --replicas 2 [--engine ray]   # two servers, robot i on replica i mod 2

Per N, one row (the issue's field names): the server (``policies.vla.server``, consistency decoding, 2 ms
window) runs in a process of its own (``replicas`` of them: ``policies.vla.replicas``, processes or Ray
actors, on tcp loopback); each robot is a process running reach episodes back to back in
lockstep (a SimEnv at 64 px, its client on board: ``policies.vla.fleet.FleetSource``) for a fixed time.
The robot processes run at a lower priority (``ROBOT_NICE``): in a fleet the robots are other machines,
so here they must not take the server's core from it (without, 8 sims get 8 of 9 time slices).

- ``chunks_per_s``: chunks all robots received per second (aggregate);
- ``control_hz`` {mean, worst}: each robot's control steps per second. Lockstep runs as fast as the
  loop allows, so >= 20 says the robot could keep a 20 Hz real-time clock with this many robots;
- ``sim_only_hz`` {mean, worst}: the same N robots driven by the scripted expert (4-step chunks, a frame
  rendered per chunk, as for the policy), no server: the simulators' own ceiling on this machine (where it
  drops below 20 Hz the cores are saturated by sims alone);
- ``server_chunks_per_s`` and ``server_batch_sizes``: the server's own capacity, what batching buys with
  the simulators out of the way: N robots replaying recorded observations (no physics, no rendering),
  each asking again as soon as its chunk arrives;
- ``latency_p50_ms`` / ``latency_p99_ms``: capture -> chunk at the robot;
- ``batch_sizes``: rows per forward -> forwards; ``success_rate``: episodes that succeeded / finished.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import statistics
import threading
import time
from collections import Counter
from typing import Any

import numpy as np

from agentrt.bench.report import percentile, print_rows

__all__ = ["run", "print_table", "measure"]

log = logging.getLogger(__name__)

ROBOTS = (1, 2, 4, 8)
SEED = 300_000  # robot i runs seeds SEED + 1000 i, ...: every robot its own scenes and instructions
START_TIMEOUT_S = 120.0
ROBOT_NICE = 10  # the simulated robots yield the CPU to the server, as robots on their own machines would
EXECUTE_STEPS = 4  # lockstep: the steps of a chunk run before the next plan (agentrt.scheduler's default)


def run(quick: bool, robots: tuple[int, ...] | None = None, replicas: int = 1, engine: str = "local") -> dict[str, Any]:
    """The table's rows; ``quick`` (1 and 2 robots, short runs) finishes within about a minute on 2 cores."""
    from policies.vla.replicas import ReplicaConfig

    counts = robots or ((1, 2) if quick else ROBOTS)
    return measure(counts, seconds=4.0 if quick else 20.0, sim_seconds=2.0 if quick else 8.0,
                   servers=ReplicaConfig(replicas=replicas, engine=engine, port=0))


def measure(counts: tuple[int, ...], *, seconds: float, sim_seconds: float, servers: Any = None) -> dict[str, Any]:
    """``servers``: a ``policies.vla.replicas.ReplicaConfig`` (default: one local server)."""
    from agentrt.progress import ProgressLine

    load_before = list(os.getloadavg())  # the machine before this bench's own processes add to it
    progress = ProgressLine("bench fleet", total=len(counts), unit="fleets", tty_every_s=0.0, plain_every_s=0.0)
    rows = []
    for done, n in enumerate(counts):
        progress.update(done, note=f"{n} robot(s): sims + policy server, sims alone, server alone")
        row = _fleet(n, seconds, "policy", servers)
        row["sim_only_hz"] = _fleet(n, sim_seconds, "sims", servers)["control_hz"]
        replay = _fleet(n, sim_seconds, "replay", servers)
        row["server_chunks_per_s"], row["server_batch_sizes"] = replay["chunks_per_s"], replay["batch_sizes"]
        rows.append(row)
    progress.update(len(counts), note="done")
    progress.done(f"bench fleet: {', '.join(str(n) for n in counts)} robots")
    result: dict[str, Any] = {"rows": rows, "seconds": seconds, "cpus": os.cpu_count(),
                              "engine": servers.engine if servers is not None else "local",
                              "load_average": list(os.getloadavg()), "load_average_before": load_before}
    first = rows[0]
    if first["chunks_per_s"]:
        result["chunks_per_s_vs_first"] = {str(r["robots"]): r["chunks_per_s"] / first["chunks_per_s"] for r in rows}
    return result


def _fleet(n: int, seconds: float, mode: str, servers: Any) -> dict[str, Any]:
    """Run ``n`` robots for ``seconds`` after every one is ready; -> the row. ``mode``: policy (sims asking the
    servers), sims (the expert, no server) or replay (recorded observations asking the servers, no sims)."""
    from policies.vla.replicas import ReplicaConfig, Replicas
    from policies.vla.server import PolicyServerNodeConfig

    expert = mode == "sims"
    servers = servers or ReplicaConfig(port=0)
    ctx = mp.get_context("spawn")  # no torch or zmq state copied into the children
    results = ctx.Queue()
    ready = ctx.Barrier(n + 1)
    replicas = Replicas(servers, PolicyServerNodeConfig(decoding="consistency", device="cpu"))
    try:
        endpoints = "" if expert else ",".join(replicas.start())  # returns once every replica is warm
        target = _replay if mode == "replay" else _robot
        robots = [ctx.Process(target=target, args=(i, endpoints, seconds, ready, results, expert), name=f"robot{i}")
                  for i in range(n)]
        for p in robots:
            p.start()
        try:
            ready.wait(START_TIMEOUT_S)
            got = [results.get(timeout=seconds + START_TIMEOUT_S) for _ in range(n)]
        finally:
            for p in robots:
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
                    p.join()
    finally:
        replicas.close()
    row = _row(n, got, _merged(replicas.stats))
    row["replicas"] = 0 if expert else servers.replicas
    return row


def _merged(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """The replicas' batch sizes and dropped requests, summed."""
    batches: Counter[str] = Counter()
    bad: Counter[str] = Counter()
    for s in stats:
        batches.update(s.get("batches", {}))
        bad.update(s.get("bad", {}))
    return {"batches": dict(sorted(batches.items(), key=lambda kv: int(kv[0]))), "bad": dict(bad)}


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


def _robot(index: int, endpoint: str, seconds: float, ready: Any, results: Any, expert: bool) -> None:
    """One robot: reach episodes back to back, lockstep, until ``seconds`` after the start."""
    from policies.vla.fleet import FleetClient, FleetSource
    from sims.camera import SceneCameraConfig
    from sims.clock import make_clock
    from sims.env import SimEnv, SimEnvConfig
    from sims.loop import run_episode

    os.nice(ROBOT_NICE)
    camera = SceneCameraConfig(width=64, height=64, renderer="tiny")
    client = None if expert else FleetClient(endpoint, f"robot{index}", replica=index)
    out: dict[str, Any] = {"steps": 0, "episodes": 0, "successes": 0, "chunks": 0, "latencies_ms": []}
    with SimEnv(SimEnvConfig(task="reach", camera=camera)) as env:
        env.reset(seed=SEED)  # the first reset and render load everything: not in the measured time
        env.render("scene")
        source: Any = _ChunkedExpert(env) if client is None else FleetSource(client, env)
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


def _replay(index: int, endpoint: str, seconds: float, ready: Any, results: Any, _expert: bool) -> None:
    """A robot without a simulator: recorded observations (every task's, from a different one per robot),
    asked about one after another, each as soon as the last chunk came back."""
    from agentrt.bench.vla import RECORDED, load_observations
    from agentrt.messages import Frame, RobotState
    from policies.vla.fleet import FleetClient

    os.nice(ROBOT_NICE)
    observed = [o for episodes in load_observations(RECORDED, 4, 40).values() for e in episodes for o in e]
    client = FleetClient(endpoint, f"robot{index}", replica=index)
    out: dict[str, Any] = {"steps": 0, "episodes": 0, "successes": 0, "chunks": 0, "latencies_ms": []}
    ready.wait(START_TIMEOUT_S)
    started = time.monotonic()
    seq = 0
    while time.monotonic() - started < seconds:
        image, vector, instruction = observed[(index * 37 + seq) % len(observed)]
        t_capture = time.monotonic_ns()
        seq += 1
        state = RobotState("panda", seq, t_capture, np.zeros(7), np.zeros(7),
                           np.array([*vector[:3], 0.0, 0.0, 0.0, 1.0]), float(vector[3]), frame_seq=seq,
                           instruction=str(instruction), episode=0)
        if client.request(state, Frame("scene", seq, t_capture, np.ascontiguousarray(image)), timeout_s=10.0):
            out["chunks"] += 1
            out["steps"] += EXECUTE_STEPS
            out["latencies_ms"].append((time.monotonic_ns() - t_capture) / 1e6)
    out["elapsed_s"] = time.monotonic() - started
    client.close()
    results.put(out)


class _ChunkedExpert:
    """The sims' own cost with no policy: the scripted expert's action repeated for a chunk's steps, and a
    frame rendered per chunk, as the policy-driven robots do."""

    wants_frames = True

    def __init__(self, env: Any) -> None:
        from sims.loop import ExpertSource

        self.expert = ExpertSource(env)
        self.observation: Any = None

    def observe(self, tick: Any) -> None:
        self.expert.observe(tick)  # a new expert at each episode start
        self.observation = tick.observation

    def fetch(self, queue: Any, *, wait: bool, stop: threading.Event) -> None:
        expert = self.expert.expert
        if queue.remaining == 0 and expert is not None and self.observation is not None:
            queue.submit("ee_delta", np.repeat(expert.act(self.observation)[None, :], EXECUTE_STEPS, axis=0))


def print_table(result: dict[str, Any]) -> None:
    def sizes(batches: dict[str, int]) -> str:
        return " ".join(f"{k}:{v}" for k, v in batches.items())

    rows = [[r["robots"], r.get("replicas", 1), r["chunks_per_s"], r["control_hz"]["mean"], r["control_hz"]["worst"],
             r["sim_only_hz"]["mean"], r["sim_only_hz"]["worst"], r["latency_p50_ms"], r["latency_p99_ms"],
             sizes(r["batch_sizes"]), r["success_rate"], r["server_chunks_per_s"], sizes(r["server_batch_sizes"])]
            for r in result["rows"]]
    load = ", ".join(f"{x:.2f}" for x in result.get("load_average_before", result["load_average"]))
    engine = result.get("engine", "local")
    print_rows(f"bench fleet: policy server replicas ({engine}), N robots in lockstep ({result['cpus']} CPUs, "
               f"load before {load})",
               ["robots", "replicas", "chunks/s", "Hz mean", "Hz worst", "sims alone Hz", "sims worst Hz", "p50 ms", "p99 ms",
                "batch sizes", "success", "server chunks/s", "server batches"], rows)
