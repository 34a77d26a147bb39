"""`agentrt stream SOURCE`: publish a frame source as a stream of Frame messages.

SOURCE is one of: ``synthetic`` (``synthetic:bars:640x480@30``), ``camera:0``
(``camera:/dev/video2:1280x720@30``), a video file, a recording (plays with its
original timing), a folder of images, or ``rtsp://`` / ``http(s)://`` URLs.
Any config field can be set with ``--set KEY=VALUE``. Once a second it
prints the rate, the frames sent and the drops.

    agentrt stream synthetic                                    # on ipc://<run dir>/camera
    agentrt stream synthetic:640x480@30 --name cam0 --duration 10
    agentrt stream camera:0 --set width=1280 --set height=720 --set fps=30
    agentrt stream clip.mp4 --loop                              # paced at the file's own rate
    agentrt stream clip.mp4 --fast                              # as fast as it decodes, nothing dropped
    agentrt stream rtsp://192.168.1.10:554/stream1 --set timeout_ms=3000
    agentrt stream photos/ --set fps=2 --loop
    agentrt stream synthetic --endpoint tcp://0.0.0.0:5555 --jpeg   # to other hosts, JPEG-compressed

Look at it with `agentrt view camera`, record it with `agentrt record camera --out run1.mp4`.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from agentrt.cli.common import add_no_status
from agentrt.errors import FrameTimeout, SourceError

_FAST: dict[str, dict[str, Any]] = {"file": {"realtime": False}, "player": {"speed": 0.0}, "synthetic": {"fps": 0.0}, "folder": {"fps": 0.0}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="synthetic[:WxH@FPS], camera:N, a file, folder or URL")
    parser.add_argument("--name", default="camera", help="stream name: on every frame and in the endpoint (default camera)")
    parser.add_argument("--endpoint", help="publish here instead of ipc://<run dir>/NAME (e.g. tcp://0.0.0.0:5555)")
    parser.add_argument("--jpeg", action="store_true", help="JPEG-encode frames (across hosts; no shared memory)")
    parser.add_argument("--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (0 = run until Ctrl-C)")
    parser.add_argument("--frames", type=int, default=0, metavar="N", help="stop after N frames (0 = no limit)")
    parser.add_argument("--loop", action="store_true", help="files, folders, recordings: start over at the end")
    parser.add_argument("--fast", action="store_true", help="as fast as possible instead of the source's own rate")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any source config field")
    add_no_status(parser)


def source_overrides(args: argparse.Namespace, type_name: str) -> dict[str, Any]:
    """The config fields the common flags (--name, --loop, --fast, --set) stand for."""
    from streams.registry import parse_overrides

    overrides: dict[str, Any] = {"stream": args.name}
    if args.loop:
        overrides["loop"] = True
    if args.fast:
        overrides.update(_FAST.get(type_name, {}))
    overrides.update(parse_overrides(args.set))
    return overrides


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM (a supervisor, `kill`) runs the same teardown as Ctrl-C. Main thread only."""

    def _raise(*_: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    with sigterm_as_interrupt():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from agentrt.transport import Publisher, endpoint
    from streams.registry import make_source, parse_source
    from streams.source import StreamEnded

    spec = parse_source(args.source)
    source = make_source(spec, **source_overrides(args, spec["type"]))
    address = args.endpoint or endpoint(args.name)
    publisher = Publisher(address, encoding="jpeg" if args.jpeg else "raw", shm=False if args.jpeg else None)
    sent = 0
    t_start = time.monotonic()
    try:
        source.connect()
        print(f"publishing {source.describe()} ({source.width}x{source.height}, {source.config.pixel_format}) "
              f"as '{args.name}' on {publisher.bound_address}", flush=True)
        next_status = t_start + 1.0
        while True:
            now = time.monotonic()
            if (args.duration and now - t_start >= args.duration) or (args.frames and sent >= args.frames):
                break
            if not args.no_status and now >= next_status:
                _status(args.name, source, publisher, sent)
                next_status = now + 1.0
            try:
                frame = source.async_read(timeout_ms=min(source.config.timeout_ms, 500))
            except StreamEnded as exc:
                print(f"{args.name}: {exc}")
                break
            except FrameTimeout:
                continue  # nothing new yet: check for stop and read again
            except SourceError as exc:
                if not source.alive:
                    raise
                print(f"{args.name}: {exc}", flush=True)
                continue
            publisher.send(frame)
            sent += 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the normal way to stop; finish cleanly
        print("stopping", flush=True)
    finally:
        source.disconnect()
        publisher.close()
    elapsed = time.monotonic() - t_start
    _status(args.name, source, publisher, sent, final=True, elapsed_s=elapsed)
    return 0


def _status(name: str, source: Any, publisher: Any, sent: int, *, final: bool = False, elapsed_s: float = 0.0) -> None:
    s = source.stats
    rate = f"{sent / elapsed_s:.1f} fps average" if final and elapsed_s > 0 else f"{s.fps:.1f} fps"
    print(
        f"{name}: {'done, ' if final else ''}{rate} | sent {sent} | dropped {s.dropped} "
        f"(replaced {s.replaced}, skipped {s.skipped}) | not delivered {publisher.stats.send_dropped} | "
        f"reconnects {s.reconnects} | {source.state}",
        flush=True,
    )
