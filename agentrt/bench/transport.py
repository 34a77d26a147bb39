"""`agentrt bench transport`: one frame, one way, through each path, side by side in one run.

Methods: in-process memcpy (the floor), the shared-memory ring (+ a ZeroMQ
notice), ZeroMQ ipc, ZeroMQ tcp on loopback; frames 640x480x3 and 1920x1080x3
uint8. The sender is another process; latency is capture stamp to the
receiver holding a numpy view, on CLOCK_MONOTONIC. Then the median age of the
frame a consumer spending 100 ms per frame gets from a 30 fps publisher.

    agentrt bench transport --quick
    agentrt bench transport --json transport.json
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from agentrt.bench.report import percentile, print_rows
from agentrt.errors import TransportError
from agentrt.messages import Frame, now_ns
from agentrt.runfiles import owned_dir, remove_dir
from agentrt.transport import Subscriber, run_dir

__all__ = ["run", "print_table", "FRAMES", "METHODS"]

FRAMES = {"640x480x3": (480, 640), "1920x1080x3": (1080, 1920)}
METHODS = ("memcpy", "shm", "zmq-ipc", "zmq-tcp")


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _address(method: str, folder: Path) -> str:
    if method == "zmq-tcp":
        return f"tcp://127.0.0.1:{_free_tcp_port()}"
    return f"ipc://{folder / 'frames'}"


class _Peer:
    """A sender process plus the control socket we use to ack and release it, in a folder of its own."""

    def __init__(self, method: str, mode: str, height: int, width: int, **extra: Any) -> None:
        # the peer's sockets live in its own folder, removed by close(); a killed run's is swept by the next
        self.folder = owned_dir(run_dir(), "bench-transport-")
        self.address = _address(method, self.folder)
        self.control: zmq.Socket = zmq.Context.instance().socket(zmq.PUSH)
        try:
            self.control.setsockopt(zmq.LINGER, 0)
            control_address = f"ipc://{self.folder / 'control'}"
            self.control.bind(control_address)
            spec = {"address": self.address, "control": control_address, "method": method, "mode": mode,
                    "height": height, "width": width, **extra}
            self.subscriber = Subscriber(self.address)
            self.process = subprocess.Popen([sys.executable, "-m", "agentrt.bench.transport_peer", json.dumps(spec)])
        except BaseException:
            self.control.close()
            remove_dir(self.folder)
            raise

    def recv(self, timeout_ms: int = 10_000) -> Frame:
        message = self.subscriber.recv(timeout_ms=timeout_ms)
        if not isinstance(message, Frame):
            raise TransportError(f"benchmark sender on {self.address} sent nothing for {timeout_ms} ms")
        return message

    def close(self) -> None:
        try:
            self.control.send(b"done", zmq.NOBLOCK)
        except zmq.Again:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.control.close()
        self.subscriber.close()
        remove_dir(self.folder)


def _memcpy(height: int, width: int, count: int, buffers: int = 8) -> dict[str, float]:
    """One copy of a frame into a buffer that is not in cache: the floor of any transport.

    Destinations rotate over ``buffers`` frames, as the shared-memory ring's slots do;
    copying into one hot buffer again and again would flatter the floor several-fold.
    """
    source = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    destinations = [np.ones_like(source) for _ in range(buffers)]  # touched: no page faults in the loop
    samples = []
    for i in range(count):
        start = time.perf_counter_ns()
        np.copyto(destinations[i % buffers], source)
        samples.append(time.perf_counter_ns() - start)
    return _figures(samples)


def _figures(samples_ns: list[int]) -> dict[str, float]:
    microseconds = [s / 1e3 for s in samples_ns]
    return {"p50_us": percentile(microseconds, 50), "p99_us": percentile(microseconds, 99)}


def _one_way(method: str, height: int, width: int, count: int, warmup: int = 5) -> dict[str, float]:
    peer = _Peer(method, "lockstep", height, width, count=count + warmup)
    samples = []
    try:
        expected = 0
        while expected < count + warmup:
            frame = peer.recv()
            latency = now_ns() - frame.t_capture_ns  # the receiver now holds a numpy view of the pixels
            if frame.seq == expected:
                if expected >= warmup:
                    samples.append(latency)
                expected += 1
            peer.control.send(str(frame.seq).encode())
    finally:
        peer.close()
    return _figures(samples)


def _throughput(method: str, height: int, width: int, duration_s: float) -> float:
    """Distinct frames per second a consumer receives while the sender goes flat out."""
    peer = _Peer(method, "burst", height, width, duration_s=duration_s)
    seqs: list[int] = []
    times: list[int] = []
    try:
        seqs.append(peer.recv().seq)
        times.append(now_ns())
        while True:
            message = peer.subscriber.recv(timeout_ms=500)
            if message is None:
                break
            seqs.append(message.seq)
            times.append(now_ns())
    finally:
        peer.close()
    if len(seqs) < 2:
        return float("nan")
    return (len(set(seqs)) - 1) / ((times[-1] - times[0]) / 1e9)


def _slow_consumer_age(method: str, duration_s: float, work_s: float = 0.1) -> float:
    """Median age (ms) of what a consumer spending ``work_s`` per frame gets from a 30 fps VGA publisher."""
    peer = _Peer(method, "paced", 480, 640, duration_s=duration_s, rate_hz=30.0)
    ages = []
    try:
        peer.recv()
        end = time.monotonic() + duration_s - 0.5
        while time.monotonic() < end:
            frame = peer.recv(timeout_ms=2000)
            ages.append((now_ns() - frame.t_capture_ns) / 1e6)
            time.sleep(work_s)  # the consumer's work
    finally:
        peer.close()
    return percentile(ages, 50)


def run(quick: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    from rich.progress import Progress

    count = {"640x480x3": 60 if quick else 300, "1920x1080x3": 30 if quick else 150}
    burst_s = 1.0 if quick else 3.0
    age_s = 2.5 if quick else 6.0
    steps = len(FRAMES) * len(METHODS) + 3
    results: list[dict[str, Any]] = []
    ages: dict[str, float] = {}
    with Progress(transient=True) as bar:
        task = bar.add_task("transport benchmark", total=steps)
        for frame_name, (height, width) in FRAMES.items():
            for method in METHODS:
                bar.update(task, description=f"{method} {frame_name}")
                if method == "memcpy":
                    figures = _memcpy(height, width, count[frame_name] * 4)
                    figures["fps"] = 1e6 / figures["p50_us"]
                else:
                    figures = _one_way(method, height, width, count[frame_name])
                    figures["fps"] = _throughput(method, height, width, burst_s)
                results.append({"method": method, "frame": frame_name, **figures})
                bar.advance(task)
        for method in METHODS[1:]:
            bar.update(task, description=f"slow consumer, {method}")
            ages[method] = _slow_consumer_age(method, age_s)
            bar.advance(task)
    floor = {r["frame"]: r["p50_us"] for r in results if r["method"] == "memcpy"}
    for row in results:
        row["x_memcpy"] = row["p50_us"] / floor[row["frame"]]
    return {"results": results, "slow_consumer_age_ms": ages}


def print_table(result: dict[str, Any]) -> None:
    rows = [[r["method"], r["frame"], r["p50_us"], r["p99_us"], r["x_memcpy"], r["fps"]] for r in result["results"]]
    print_rows("one frame, one way (medians; sender in another process)",
               ["method", "frame", "p50 µs", "p99 µs", "p50 × memcpy", "frames/s"], rows)
    age_rows = [[method, age] for method, age in result["slow_consumer_age_ms"].items()]
    print_rows("age of the frame a 100 ms/frame consumer gets from a 30 fps publisher",
               ["method", "median age ms"], age_rows)
