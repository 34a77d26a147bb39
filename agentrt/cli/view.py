"""`agentrt view`: look at a stream: a window where a display exists, else an MJPEG page, or saved frames.

With a display (and an OpenCV build with GUI support) frames show in a
window (q or Esc closes it). Without one (a server, opencv-python-headless)
it serves an MJPEG page on localhost: open the printed URL in a browser.
``--save DIR`` writes frames as PNG files instead (every Nth with --every).

    agentrt view camera                                   # the stream named camera
    agentrt view camera --mjpeg --port 8765               # http://127.0.0.1:8765/ even where a display exists
    agentrt view camera --save shots/ --every 30 --frames 10
    agentrt view tcp://robot:5555
    agentrt view --source camera:0                        # a source directly, no publisher
    agentrt view --source run1.mp4                        # replay a recording
    agentrt view camera --timeout-s 0                     # wait for the stream however long it takes

With no frame for --timeout-s seconds (10) it stops. When it stops having
received no frame at all (timeout, --duration, Ctrl-C) it says so on one line
and exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from agentrt.errors import ConfigError
from agentrt.messages import Frame
from agentrt.pixels import to_bgr  # OpenCV's order, whatever the stream's pixel_format


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stream", nargs="?", metavar="ENDPOINT_OR_NAME", help="a stream name (camera) or an endpoint")
    parser.add_argument("--source", metavar="SOURCE", help="view a source directly (same forms as `agentrt stream`)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="source config field (with --source)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--save", metavar="DIR", help="write frames as PNG files to DIR")
    mode.add_argument("--mjpeg", action="store_true", help="serve an MJPEG page even if a display exists")
    mode.add_argument("--window", action="store_true", help="insist on a window (error without a display)")
    parser.add_argument("--port", type=int, default=8765, help="MJPEG port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="with --save: keep every Nth frame")
    parser.add_argument("--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (0 = until Ctrl-C)")
    parser.add_argument("--frames", type=int, default=0, metavar="N", help="stop after N frames shown or saved")
    parser.add_argument("--timeout-s", "--wait", dest="timeout_s", type=float, default=10.0, metavar="S",
                        help="give up if no frame arrives for S seconds (default 10, 0 = wait forever; "
                             "with none at all: an error)")


def display_available() -> bool:
    """True when a window can be opened: a display is set and OpenCV has GUI support."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.name == "nt"):
        return False
    try:
        import cv2

        cv2.namedWindow("agentrt-probe", cv2.WINDOW_AUTOSIZE)
        cv2.destroyWindow("agentrt-probe")
    except Exception:  # cv2 missing, headless build ("The function is not implemented"), no X server
        return False
    return True


class _Window:
    def __init__(self, title: str) -> None:
        import cv2

        self.cv2, self.title, self.count = cv2, title, 0
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, frame: Frame) -> bool:
        self.count += 1
        self.cv2.imshow(self.title, to_bgr(frame))
        key = self.cv2.waitKey(1) & 0xFF
        closed = self.cv2.getWindowProperty(self.title, self.cv2.WND_PROP_VISIBLE) < 1  # the window's X
        return key not in (ord("q"), 27) and not closed

    def close(self) -> None:
        self.cv2.destroyWindow(self.title)


class _Saver:
    def __init__(self, folder: str, every: int) -> None:
        import cv2

        self.cv2, self.folder, self.every, self.seen, self.count = cv2, Path(folder), max(1, every), 0, 0
        self.folder.mkdir(parents=True, exist_ok=True)

    def show(self, frame: Frame) -> bool:
        self.seen += 1
        if (self.seen - 1) % self.every == 0:
            self.count += 1
            path = self.folder / f"{frame.stream}_{frame.seq:08d}.png"
            if not self.cv2.imwrite(str(path), to_bgr(frame)):
                raise ConfigError(f"agentrt view: cannot write {path}")
        return True

    def close(self) -> None:
        if self.count:
            print(f"saved {self.count} frames to {self.folder}/", flush=True)


class _Page:
    def __init__(self, port: int, title: str) -> None:
        from streams.mjpeg import MJPEGServer

        self.count = 0
        self.server = MJPEGServer(port=port, title=title)
        self.server.start()
        print(f"open {self.server.url} in a browser (MJPEG; Ctrl-C to stop)", flush=True)

    def show(self, frame: Frame) -> bool:
        self.count += 1
        self.server.update(frame)
        return True

    def close(self) -> None:
        self.server.close()


def run(args: argparse.Namespace) -> int:
    from agentrt.cli.stream import sigterm_as_interrupt

    with sigterm_as_interrupt():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from streams.feed import open_feed
    from streams.registry import parse_overrides

    if args.stream is None and args.source is None:
        raise ConfigError("agentrt view: give a stream (name or endpoint) or --source SOURCE")
    feed = open_feed(args.stream, source=args.source, overrides=parse_overrides(args.set) if args.source else None)
    sink: Any = None
    t_start = time.monotonic()
    last_frame = t_start
    received = 0
    try:
        if args.save:
            sink = _Saver(args.save, args.every)
        elif args.window or (not args.mjpeg and display_available()):
            if not display_available():
                raise ConfigError("agentrt view --window: no display (or OpenCV without GUI); try --mjpeg or --save DIR")
            sink = _Window(f"agentrt: {feed.label}")
        else:
            sink = _Page(args.port, feed.label)
        while True:
            if (args.duration and time.monotonic() - t_start >= args.duration) or (args.frames and sink.count >= args.frames):
                break
            if args.timeout_s and time.monotonic() - last_frame > args.timeout_s:
                if received:  # with none at all, the one error line below says it
                    print(f"no frame from {feed.label} for {args.timeout_s:g} s; stopping (is the stream running?)",
                          flush=True)
                break
            frame = feed.next(timeout_ms=200)
            if frame is None:
                if feed.ended:
                    break
                continue
            received += 1
            last_frame = time.monotonic()
            if not sink.show(frame):
                break
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the normal way to stop; finish cleanly
        print("stopping", flush=True)
    finally:
        if sink is not None:
            sink.close()
        feed.close()
    if not received:
        print(f"agentrt view: error: no frame from {feed.label} in {time.monotonic() - t_start:.1f} s; is the stream "
              "running (agentrt stream ...) and is the name or endpoint right?", file=sys.stderr)
        return 1
    shown = sink.count if sink is not None else 0
    print(f"{shown} frames from {feed.label}; not seen {feed.dropped()}", flush=True)
    return 0
