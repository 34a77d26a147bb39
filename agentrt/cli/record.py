"""`agentrt record`: write a stream to MP4 (H.264) with a sidecar of per-frame capture times.

The recording is OUT plus OUT's stem + ``.frames.csv`` (index, seq,
t_capture_ns, pts_us). `agentrt stream OUT` replays it with its original
timing. Frames the recorder never saw (the stream is latest-only: a
recorder slower than the source skips frames) show as seq gaps in the
sidecar and are counted in the status line. With no frame for --timeout-s
seconds (10) it stops; with none at all it says so and exits with status 1.
The MP4 is fragmented as it is written: a recorder killed with kill -9 leaves a
file that plays up to about half a second before the kill (docs/streams.md).

    agentrt record camera --out run1.mp4 --duration 10          # the stream named camera
    agentrt record ipc:///tmp/agentrt-1000/cam0 --out cam0.mp4 --frames 300
    agentrt record tcp://robot:5555 --out remote.mp4 --timeout-s 30  # give up after 30 s without a frame
    agentrt record --source synthetic:640x480@30 --out test.mp4 --duration 5   # straight from a source
    agentrt stream run1.mp4                                      # replay with the original timing
"""

from __future__ import annotations

import argparse
import sys
import time

from agentrt.cli.common import add_no_status
from agentrt.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stream", nargs="?", metavar="ENDPOINT_OR_NAME", help="a stream name (camera) or an endpoint")
    parser.add_argument("--source", metavar="SOURCE", help="record a source directly (same forms as `agentrt stream`)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="source config field (with --source)")
    parser.add_argument("--out", required=True, metavar="PATH", help="the MP4 to write")
    parser.add_argument("--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (0 = until Ctrl-C)")
    parser.add_argument("--frames", type=int, default=0, metavar="N", help="stop after N frames (0 = no limit)")
    parser.add_argument("--codec", default="auto", help="auto (libx264, else mpeg4), libx264, mpeg4, ...")
    parser.add_argument("--crf", type=int, default=23, help="libx264 quality, 0 (lossless) .. 51")
    parser.add_argument("--timeout-s", "--wait", dest="timeout_s", type=float, default=10.0, metavar="S",
                        help="give up if no frame arrives for S seconds (default 10, 0 = wait forever; with none at all: an error)")
    add_no_status(parser)


def run(args: argparse.Namespace) -> int:
    from agentrt.cli.stream import sigterm_as_interrupt

    with sigterm_as_interrupt():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from streams.feed import open_feed
    from streams.recorder import Recorder, RecorderConfig
    from streams.registry import parse_overrides

    if args.stream is None and args.source is None:
        raise ConfigError("agentrt record: give a stream (name or endpoint) or --source SOURCE")
    recorder = Recorder(RecorderConfig(path=args.out, codec=args.codec, crf=args.crf))
    feed = open_feed(args.stream, source=args.source, overrides=parse_overrides(args.set) if args.source else None)
    print(f"recording {feed.label} to {args.out}", flush=True)
    t_start = time.monotonic()
    last_frame = t_start
    next_status = t_start + 1.0
    try:
        while True:
            now = time.monotonic()
            if (args.duration and now - t_start >= args.duration) or (args.frames and recorder.frames >= args.frames):
                break
            if args.timeout_s and now - last_frame > args.timeout_s:
                if recorder.frames:  # with none at all, the one error line below says it
                    print(f"no frame from {feed.label} for {args.timeout_s:g} s; stopping (is the stream running?)",
                          flush=True)
                break
            if not args.no_status and now >= next_status:
                print(f"recorded {recorder.frames} frames | not seen {feed.dropped()}", flush=True)
                next_status = now + 1.0
            frame = feed.next(timeout_ms=200)
            if frame is None:
                if feed.ended:
                    break
                continue
            recorder.write(frame)
            last_frame = time.monotonic()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the normal way to stop; finish cleanly
        print("stopping", flush=True)
    finally:
        feed.close()
        recorder.close()
    elapsed = time.monotonic() - t_start
    if not recorder.frames:
        print(f"agentrt record: error: no frame from {feed.label} in {elapsed:.1f} s, nothing written; "
              "is the stream running (agentrt stream ...) and is the name or endpoint right?", file=sys.stderr)
        return 1
    print(f"wrote {recorder.frames} frames in {elapsed:.1f} s to {recorder.path} (+ {recorder.sidecar.name}); "
          f"not seen {feed.dropped()}", flush=True)
    return 0
