"""The transport demo (`agentrt demo --transport`): the wire and transport on their own, no model.

A camera process streams a synthetic 640x480 scene (a square moving over a
gradient) at 30 fps over the shared-memory ring; a policy loop takes the newest
frame, finds the square and sends an ActionChunk (lossless) to a robot
stand-in, which measures capture-to-actuation latency on the echoed capture
time. Prints a live status line and a summary, and writes a report (JSON and
a PNG plot) to the output folder.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import threading
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.bench.report import percentile, print_rows
from agentrt.errors import ConfigError
from agentrt.messages import ActionChunk, Frame, now_ns
from agentrt.runfiles import temporary_dir
from agentrt.transport import Publisher, Subscriber, run_dir


def synthetic_scene(seq: int, height: int = 480, width: int = 640) -> np.ndarray:
    """A horizontal gradient with a white 40-px square circling the centre."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = (np.arange(width, dtype=np.uint16) * 200 // width).astype(np.uint8)[None, :, None]
    angle = seq * 0.05
    cx, cy = int(width / 2 + 200 * np.cos(angle)), int(height / 2 + 150 * np.sin(angle))
    image[cy - 20 : cy + 20, cx - 20 : cx + 20] = 255
    return image


def _camera(address: str, fps: float, stop: EventType) -> None:
    with Publisher(address) as publisher:
        seq, next_time = 0, time.monotonic()
        while not stop.is_set():
            publisher.send(Frame("camera", seq, now_ns(), synthetic_scene(seq)))
            seq += 1
            next_time += 1.0 / fps
            time.sleep(max(0.0, next_time - time.monotonic()))


def _robot(address: str, stop: threading.Event, latencies_ms: list[tuple[float, float]], targets: list) -> None:
    with Subscriber(address, lossless=True) as actions:
        start = now_ns()
        while not stop.is_set():
            chunk = actions.recv(timeout_ms=100)
            if isinstance(chunk, ActionChunk):
                arrived = now_ns()
                latencies_ms.append(((arrived - start) / 1e9, (arrived - chunk.t_capture_ns) / 1e6))
                targets.append(chunk.actions[0, :2].tolist())


def find_square(image: np.ndarray) -> tuple[float, float]:
    """The policy's 'perception': centre of the saturated pixels, normalised to -1..1."""
    ys, xs = np.nonzero(image[:, :, 1] == 255)
    if len(xs) == 0:
        return 0.0, 0.0
    height, width = image.shape[:2]
    return float(xs.mean() / width * 2 - 1), float(ys.mean() / height * 2 - 1)


def run_transport_demo(args: argparse.Namespace) -> int:
    """``args``: duration (s), fps, out (folder). Returns the exit code."""
    if args.duration <= 0 or args.fps <= 0:
        raise ConfigError(f"--duration and --fps must be > 0, got {args.duration} and {args.fps}")
    # the two endpoints live in a folder of this run, removed at the end (a killed run's is swept by the next)
    with temporary_dir("demo-transport-", parent=run_dir()) as folder:
        frames_address, actions_address = f"ipc://{folder / 'camera.frames'}", f"ipc://{folder / 'policy.actions'}"
        stats, ages_ms, latencies = _run(args, frames_address, actions_address)
    return _report(args, stats, ages_ms, latencies)


def _run(args: argparse.Namespace, frames_address: str,
         actions_address: str) -> tuple[dict[str, Any], list[float], list[tuple[float, float]]]:
    stop_camera = mp.get_context("spawn").Event()
    camera = mp.get_context("spawn").Process(target=_camera, args=(frames_address, args.fps, stop_camera), daemon=True)
    stop_robot = threading.Event()
    latencies: list[tuple[float, float]] = []
    targets: list[list[float]] = []
    robot = threading.Thread(target=_robot, args=(actions_address, stop_robot, latencies, targets), daemon=True)
    ages_ms: list[float] = []
    print(f"demo: camera {args.fps:g} fps 640x480 -> policy -> robot, {args.duration:g} s "
          "(shared-memory frames, lossless actions)")
    camera.start()
    robot.start()
    frames = Subscriber(frames_address)
    policy = Publisher(actions_address, lossless=True)
    try:
        frames.recv(timeout_ms=10_000)  # wait for the camera process to come up
        start = time.monotonic()
        chunk_seq = 0
        while time.monotonic() - start < args.duration:
            frame = frames.recv(timeout_ms=1000)
            if not isinstance(frame, Frame):
                continue
            ages_ms.append((now_ns() - frame.t_capture_ns) / 1e6)
            x, y = find_square(frame.image)
            actions = np.tile(np.array([x, y, 0, 0, 0, 0, 0], np.float32), (4, 1))
            policy.send(ActionChunk("demo-arm", chunk_seq, frame.seq, frame.t_capture_ns, "ee_delta", actions,
                                    1000 / args.fps, now_ns()))
            chunk_seq += 1
            if chunk_seq % 15 == 0 and sys.stdout.isatty():
                print(f"\r  {time.monotonic() - start:4.1f} s  frames {frames.stats.received}  "
                      f"frame age p50 {percentile(ages_ms, 50):5.2f} ms  chunks {len(latencies)}", end="", flush=True)
        time.sleep(0.2)  # let the last chunks arrive
    finally:
        stop_robot.set()
        stop_camera.set()
        robot.join(timeout=2)
        camera.join(timeout=2)
        if camera.is_alive():
            camera.kill()
            camera.join()
        frames.close()
        policy.close()
    if sys.stdout.isatty():
        print()
    return frames.stats.as_dict(), ages_ms, latencies


def _report(args: argparse.Namespace, stats: dict[str, Any], ages_ms: list[float],
            latencies: list[tuple[float, float]]) -> int:
    actuation = [lat for _, lat in latencies]
    received = stats["received"]
    summary = {
        "duration_s": args.duration,
        "camera_fps": args.fps,
        "frames_received": received,
        "frames_skipped": stats["skipped"],
        "bad_messages": stats["bad"],
        "policy_hz": received / args.duration,
        "frame_age_p50_ms": percentile(ages_ms, 50),
        "frame_age_p99_ms": percentile(ages_ms, 99),
        "chunks_executed": len(actuation),
        "capture_to_actuation_p50_ms": percentile(actuation, 50),
        "capture_to_actuation_p99_ms": percentile(actuation, 99),
    }
    print_rows("demo summary", ["measure", "value"], [[k, float(v)] for k, v in summary.items()])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"summary": summary, "latencies_ms": latencies}, indent=2) + "\n")
    _plot(out / "latency.png", latencies)
    print(f"report: {out / 'report.json'}, {out / 'latency.png'}")
    if not actuation:
        print("demo: no action chunk reached the robot; see the log above", file=sys.stderr)
        return 1
    return 0


def _plot(path: Path, latencies: list[tuple[float, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (over_time, distribution) = plt.subplots(1, 2, figsize=(10, 3.5))
    if latencies:
        times, values = zip(*latencies, strict=True)
        over_time.plot(times, values, ".", markersize=3)
        distribution.hist(values, bins=40)
    over_time.set(xlabel="time (s)", ylabel="capture to actuation (ms)", title="latency over time")
    distribution.set(xlabel="capture to actuation (ms)", ylabel="chunks", title="distribution")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
