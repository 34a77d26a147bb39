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
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from agentrt.cli.common import add_no_status

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


class _PublishIO:
    """The `NodeIO` of `agentrt stream`: a SourceNode in this process, its frames on one Publisher.

    It stops the node after ``--duration`` / ``--frames`` and prints the status line once a second
    from ``beat()`` (the node's loop calls it every iteration)."""

    def __init__(self, args: argparse.Namespace, publisher: Any) -> None:
        self.args, self.publisher = args, publisher
        self.sent = 0
        self.node: Any = None  # the SourceNode, once set up (its source has the stats)
        self.t_start = time.monotonic()
        self._next_status = self.t_start + 1.0

    def clock_ns(self) -> int:
        return time.monotonic_ns()

    def poll(self, timeout_ns: int) -> list[tuple[str, Any]]:
        return []  # no inputs; SourceNode waits on its source (idle_ns=0)

    def send(self, output: str, message: Any) -> None:
        self.publisher.send(message)
        self.sent += 1

    def stop_reason(self) -> str:
        args = self.args
        if args.duration and time.monotonic() - self.t_start >= args.duration:
            return "duration reached"
        if args.frames and self.sent >= args.frames:
            return "frames reached"
        return ""

    def armed(self) -> bool:
        return True

    def report(self, state: str) -> None:
        pass

    def beat(self) -> None:
        now = time.monotonic()
        if self.node is not None and not self.args.no_status and now >= self._next_status:
            _status(self.args.name, self.node.source, self.publisher, self.sent)
            self._next_status = now + 1.0


def _run(args: argparse.Namespace) -> int:
    from agentrt.transport import Publisher, endpoint
    from streams.node import SourceNode, SourceNodeConfig
    from streams.registry import parse_source

    class StreamNode(SourceNode):
        def note(self, text: str, *, warning: bool = False) -> None:
            print(f"{args.name}: {text}", flush=True)

    spec = parse_source(args.source)
    config = SourceNodeConfig(source=spec, stream=args.name, params=source_overrides(args, spec["type"]))
    address = args.endpoint or endpoint(args.name)
    publisher = Publisher(address, encoding="jpeg" if args.jpeg else "raw", shm=False if args.jpeg else None)
    io = _PublishIO(args, publisher)
    node = StreamNode(config, name=args.name, io=io)
    node.log.setLevel(logging.WARNING)  # this command prints its own lines (note, status) on stdout
    try:
        node.setup()
        io.node = node
        source = node.source
        print(f"publishing {source.describe()} ({source.width}x{source.height}, {source.config.pixel_format}) "
              f"as '{args.name}' on {publisher.bound_address}", flush=True)
        node.run()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the normal way to stop; finish cleanly
        print("stopping", flush=True)
    finally:
        node.teardown()
        publisher.close()
    elapsed = time.monotonic() - io.t_start
    if io.node is not None:
        _status(args.name, node.source, publisher, io.sent, final=True, elapsed_s=elapsed)
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
