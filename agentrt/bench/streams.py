"""`agentrt bench streams`: what publishing costs a video source, and how old frames are on arrival.

Writes a 640x480 H.264 clip with PyAV into a temp folder, then, side by side
in one run (alternating rounds, medians):

- ``decode_fps``: PyAV decoding the clip to RGB arrays the way `VideoSource` does
  (one swscale context for the stream), nothing else: the floor;
- ``naive_decode_fps``: the same with ``frame.to_ndarray(format="rgb24")``, which
  builds a swscale context per frame (context: what the floor saves);
- ``source_fps``: the same through `VideoSource` (``realtime=False``: its grab
  thread, every frame delivered) and `read()`;
- ``publish_fps``: the same again, each frame sent with `Publisher` on an ipc
  endpoint (shared memory) to a subscriber in another process;
- ``overhead_ratio``: decode / publish throughput, the median of the per-round
  ratios (each round measures both back to back, so slow phases of a shared
  machine cancel); target <= 1.2.

Then the clip plays at its own rate (30 fps, looping) through `agentrt
stream`'s path and a subscriber process measures capture-to-receive latency
(``now_ns() - t_capture_ns``, one CLOCK_MONOTONIC): ``latency_p50_ms``,
``latency_p99_ms``.

    agentrt bench streams --quick
    agentrt bench streams --json streams.json
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.bench.report import percentile, print_rows
from agentrt.runfiles import temporary_dir

__all__ = ["run", "print_table", "write_clip"]

WIDTH, HEIGHT, FPS = 640, 480, 30
TARGET_OVERHEAD = 1.2


def write_clip(path: Path, frames: int, width: int = WIDTH, height: int = HEIGHT, fps: int = FPS) -> str:
    """An H.264 clip of moving shapes (libx264 if available, else mpeg4); returns the codec used."""
    from streams._deps import import_av
    from streams.synthetic import SyntheticConfig, SyntheticSource

    av = import_av()

    synthetic = SyntheticSource(SyntheticConfig(width=width, height=height, fps=0))
    synthetic._open()  # render frames directly: no pacing, no thread
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "23"}
        noise = np.random.default_rng(0).integers(0, 24, (height, width, 3), dtype=np.uint8)
        for i in range(frames):
            image = synthetic._render(i, i) + np.roll(noise, i * 7, axis=1)  # texture, so decoding is not trivial
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return codec


def _decode_only(path: Path) -> float:
    from streams._deps import import_av
    from streams.video import frame_to_array

    av = import_av()

    t = time.perf_counter()
    n = 0
    reformatter = av.video.reformatter.VideoReformatter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame_to_array(reformatter, frame)  # the source's own conversion: the ratio isolates publishing
            n += 1
    return n / (time.perf_counter() - t)


def _decode_naive(path: Path) -> float:
    """Decoding with ``frame.to_ndarray(format="rgb24")``, which builds a swscale context per frame: context only."""
    from streams._deps import import_av

    av = import_av()
    t = time.perf_counter()
    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n / (time.perf_counter() - t)


def _through_source(path: Path, publisher: Any = None) -> float:
    from streams.source import StreamEnded
    from streams.video import VideoConfig, VideoSource

    source = VideoSource(VideoConfig(path=str(path), realtime=False, stream="bench"))
    t = time.perf_counter()
    n = 0
    source.connect()
    try:
        while True:
            try:
                frame = source.read()
            except StreamEnded:
                break
            if publisher is not None:
                publisher.send(frame)
            n += 1
    finally:
        source.disconnect()
    return n / (time.perf_counter() - t)


def _subscriber(address: str, conn: Any) -> None:
    """Child process: receive frames, note capture-to-receive latency, report when told to stop."""
    from agentrt.messages import Frame, now_ns
    from agentrt.transport import Subscriber

    latencies: list[float] = []
    received = 0
    with Subscriber(address) as sub:
        conn.send("ready")
        while not conn.poll():
            message = sub.recv(timeout_ms=50)
            if isinstance(message, Frame):
                latencies.append((now_ns() - message.t_capture_ns) / 1e6)
                received += 1
        conn.recv()
        conn.send({"latencies_ms": latencies, "received": received, "skipped": sub.stats.skipped})


class _Peer:
    """A subscriber in another process."""

    def __init__(self, address: str) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_subscriber, args=(address, child), daemon=True)
        self.process.start()
        if not self.conn.poll(60) or self.conn.recv() != "ready":
            self.close()
            raise RuntimeError("the subscriber process did not start")
        time.sleep(0.3)  # let the subscription reach the publisher

    def results(self) -> dict[str, Any]:
        self.conn.send("stop")
        if not self.conn.poll(30):
            raise RuntimeError("the subscriber process did not answer")
        result: dict[str, Any] = self.conn.recv()
        return result

    def close(self) -> None:
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
        self.conn.close()


def _latency(path: Path, address: str, seconds: float) -> dict[str, Any]:
    from agentrt.transport import Publisher
    from streams.video import VideoConfig, VideoSource

    peer = _Peer(address)
    try:
        with Publisher(address) as publisher:
            time.sleep(0.2)
            source = VideoSource(VideoConfig(path=str(path), realtime=True, loop=True, stream="bench"))
            source.connect()
            sent = 0
            try:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    publisher.send(source.read())
                    sent += 1
            finally:
                source.disconnect()
            time.sleep(0.1)
            result = peer.results()
    finally:
        peer.close()
    result["sent"] = sent
    result["source_dropped"] = source.stats.dropped
    return result


def run(quick: bool = False) -> dict[str, Any]:
    from agentrt.transport import Publisher

    logging.getLogger("streams").setLevel(logging.WARNING)  # no "connected" line per round
    frames = 300 if quick else 900
    rounds = 5 if quick else 9
    latency_s = 4.0 if quick else 15.0
    # an owned temp folder: removed at the end, and a killed run's is swept by the next start
    with temporary_dir("agentrt-bench-streams-") as tmp:
        folder = tmp
        clip = folder / "clip.mp4"
        codec = write_clip(clip, frames)
        address = f"ipc://{folder / 'frames'}"
        naive, decode, source, publish = [], [], [], []
        peer = _Peer(address)
        try:
            with Publisher(address) as publisher:
                time.sleep(0.2)
                _decode_only(clip)  # warm-up: page cache, codec init
                for _ in range(rounds):
                    naive.append(_decode_naive(clip))
                    decode.append(_decode_only(clip))
                    source.append(_through_source(clip))
                    publish.append(_through_source(clip, publisher))
                throughput_peer = peer.results()
        finally:
            peer.close()
        lat = _latency(clip, f"ipc://{folder / 'live'}", latency_s)
    latencies = lat["latencies_ms"]
    naive_fps, decode_fps, source_fps, publish_fps = (statistics.median(x) for x in (naive, decode, source, publish))
    return {
        "publish_fps": publish_fps,
        "decode_fps": decode_fps,
        "source_fps": source_fps,
        "naive_decode_fps": naive_fps,
        "overhead_ratio": statistics.median(d / p for d, p in zip(decode, publish, strict=True)),
        "target_overhead_ratio": TARGET_OVERHEAD,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p99_ms": percentile(latencies, 99),
        "latency_max_ms": max(latencies) if latencies else float("nan"),
        "latency_n": len(latencies),
        "latency_sent": lat["sent"],
        "latency_source_dropped": lat["source_dropped"],
        "throughput_received": throughput_peer["received"],
        "rounds": rounds,
        "frames": frames,
        "width": WIDTH,
        "height": HEIGHT,
        "fps": FPS,
        "codec": codec,
        "cpu_count": os.cpu_count(),
        "raw": {"decode_fps": decode, "source_fps": source, "publish_fps": publish, "naive_decode_fps": naive},
    }


def print_table(result: dict[str, Any]) -> None:
    size = f"{result['width']}x{result['height']} {result['codec']}, {result['frames']} frames"
    d = result["decode_fps"]
    print_rows(
        f"streams: decode vs decode + publish ({size}; medians of {result['rounds']} rounds)",
        ["path", "fps", "x decode alone"],
        [
            ["PyAV decode + RGB, to_ndarray per frame (naive)", result["naive_decode_fps"], d / result["naive_decode_fps"]],
            ["PyAV decode + RGB, one swscale context (floor)", d, 1.0],
            ["VideoSource read()", result["source_fps"], d / result["source_fps"]],
            ["VideoSource read() + publish (ipc, shm)", result["publish_fps"], d / result["publish_fps"]],
        ],
    )
    verdict = "meets" if result["overhead_ratio"] <= result["target_overhead_ratio"] else "MISSES"
    print(f"overhead_ratio {result['overhead_ratio']:.2f} (median of per-round ratios) {verdict} the target "
          f"<= {result['target_overhead_ratio']}")
    print_rows(
        f"streams: capture-to-receive latency, {result['fps']} fps file source -> subscriber process",
        ["frames received", "p50 ms", "p99 ms", "max ms", "dropped at source"],
        [[result["latency_n"], result["latency_p50_ms"], result["latency_p99_ms"], result["latency_max_ms"],
          result["latency_source_dropped"]]],
    )
