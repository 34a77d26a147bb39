"""`agentrt ask`: ask a question about a stream from the command line; the answer streams to stdout.

    agentrt ask "what is the robot holding?" --server http://127.0.0.1:8765   # a running `agentrt serve`
    agentrt ask "what changed?" --source clip.mp4 --model hf:models/SmolVLM2   # watch a file, then answer
    agentrt ask "what do you see?" camera --seconds 5                         # a running stream (`agentrt stream`)
    agentrt ask "what do you see?" --source synthetic:320x240@15 --seconds 3
    agentrt ask "what changed?" --source clip.mp4 --device cuda --dtype bfloat16   # the model on a GPU
    agentrt ask "what is this?" --source photo.jpg --model hf:models/SmolVLM2 --reference   # as transformers does

Without --server the model is loaded here: it watches a live stream for
``--seconds`` at ``--ingest-hz``, or reads a recording to its end (every
``--every``-th frame, as fast as the model takes them; ``--frames`` caps
either), then answers. ``--reference`` (hf: models) answers about the newest
frame only, with the checkpoint's own processor and chat template: the inputs
and the answer transformers gives (docs/qa.md, "Reference mode"). Progress
(model loading, frames watched, for a recording the share read and an estimate
of the time left), time to first token and total time go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request

from agentrt.cli.common import add_device
from agentrt.errors import ConfigError, ModelError, TransportError
from agentrt.progress import ProgressLine, duration
from policies.qa.videoqa import MODEL_SPECS, split_model_spec

# source type -> the config fields that make it read as fast as the model takes frames
_AS_FAST_AS_READ: dict[str, dict[str, object]] = {"file": {"realtime": False}, "player": {"speed": 0.0},
                                                  "folder": {"fps": 0.0}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", help="the question, in quotes")
    parser.add_argument("stream", nargs="?", metavar="ENDPOINT_OR_NAME", help="a running stream (name or endpoint)")
    parser.add_argument("--source", metavar="SOURCE", help="watch a source directly: a file, synthetic, camera:N, ...")
    parser.add_argument("--server", metavar="URL", help="ask a running `agentrt serve` (e.g. http://127.0.0.1:8765)")
    parser.add_argument("--model", default="nano", help=f"{MODEL_SPECS} (default: nano; not with --server)")
    add_device(parser)
    parser.add_argument("--seconds", type=float, default=3.0, help="watch a live stream this long first (default 3)")
    parser.add_argument("--frames", type=int, default=0, metavar="N", help="stop watching after N frames ingested")
    parser.add_argument("--ingest-hz", type=float, default=4.0,
                        help="live streams: frames per second into the model (0 = every frame it can take)")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="recordings (files, folders): every Nth frame into the model (default: all)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="longest answer in tokens")
    parser.add_argument("--reference", action="store_true",
                        help="hf: models: answer about the newest frame as transformers would (the checkpoint's own "
                             "processor and chat template), not from the streaming window")


def run(args: argparse.Namespace) -> int:
    if not args.question.strip():
        raise ConfigError("the question is empty")
    if args.server:
        if args.stream or args.source:
            raise ConfigError("--server asks the server's own stream; drop the stream / --source")
        if args.reference:
            raise ConfigError("--reference runs the model here; drop --server and give --source")
        return _ask_server(args.server, args.question)
    if (args.stream is None) == (args.source is None):
        raise ConfigError("give a running stream (name or endpoint), --source SOURCE, or --server URL")
    if args.reference and split_model_spec(args.model)[0] != "hf":
        raise ConfigError(f"--reference needs a Hugging Face model (--model hf:PATH), not {args.model}")
    return _ask_here(args)


def _ask_server(url: str, question: str) -> int:
    """Read the server's Server-Sent Events and print the pieces as they come."""
    target = url.rstrip("/") + "/ask?" + urllib.parse.urlencode({"q": question})
    try:
        response = urllib.request.urlopen(target, timeout=180)  # noqa: S310 - a URL the user gave
    except (OSError, ValueError) as exc:
        raise TransportError(f"cannot reach {url} ({getattr(exc, 'reason', exc)}); "
                             "is `agentrt serve` running there?") from None
    event = ""
    with response:
        for raw in response:
            line = raw.decode("utf-8").rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "error":
                    print(file=sys.stdout, flush=True)
                    raise ModelError(f"the server failed to answer: {data.get('error')}")
                if event == "done":
                    print(flush=True)
                    print(f"first token {data['ttft_ms']:.0f} ms, total {data['total_ms']:.0f} ms (server side)",
                          file=sys.stderr)
                    return 0
                print(data.get("text", ""), end="", flush=True)
            elif not line:
                event = ""
    raise TransportError(f"{url} closed the answer before it ended")


def _ask_here(args: argparse.Namespace) -> int:
    from agentrt.cli.stream import sigterm_as_interrupt
    from agentrt.pixels import to_rgb
    from policies.qa.node import check_qa_model, checked_answer, load_qa_model
    from policies.qa.videoqa import domain_note
    from streams.feed import open_feed
    from streams.registry import parse_source
    from streams.video import is_network

    spec = check_qa_model(args.model)  # a hub name resolved (downloaded when missing) before anything starts
    # a recording is read as fast as the model takes it, nothing dropped; live sources keep their pace
    recording = bool(args.source) and not is_network(args.source)
    overrides = _AS_FAST_AS_READ.get(parse_source(args.source)["type"]) if recording else None
    print(f"loading the model ({args.model})...", file=sys.stderr, flush=True)
    t_load = time.monotonic()
    model = load_qa_model(spec, args.device, args.dtype)
    if args.reference:
        from policies.qa.hf.reference import as_reference

        model = as_reference(model)
    where = getattr(model, "device", None)
    print(f"model loaded in {time.monotonic() - t_load:.1f} s{f' on {where}, {args.dtype}' if where else ''}",
          file=sys.stderr, flush=True)
    with sigterm_as_interrupt():
        feed = open_feed(args.stream, source=args.source, overrides=overrides)
        ingested, seen, last_t = 0, 0, None
        # a recording is read faster than it played, so it is sampled by frame count, a live stream by time
        period_ns = int(1e9 / args.ingest_hz) if args.ingest_hz > 0 and overrides is None else 0
        every = max(1, args.every) if overrides is not None else 1
        t_end = time.monotonic() + args.seconds
        # a recording: how far through it, and how long is left; a live stream: how long it has watched
        total = feed.source.frame_count if overrides is not None and feed.source is not None else None
        if total and args.frames:
            total = min(total, args.frames * every)
        progress = ProgressLine(f"watching {feed.label}", total=total, unit="frames", plain_every_s=5.0)
        try:
            while not (args.frames and ingested >= args.frames):
                if overrides is None and time.monotonic() >= t_end:
                    break
                frame = feed.next(timeout_ms=200)
                if frame is None:
                    if feed.ended:
                        break
                    continue
                seen += 1
                if not ((seen - 1) % every or (period_ns and last_t is not None
                                               and frame.t_capture_ns - last_t < period_ns)):
                    model.ingest(to_rgb(frame), frame.t_capture_ns)
                    ingested, last_t = ingested + 1, frame.t_capture_ns
                progress.update(seen, note=f"{ingested} into the model")
        except KeyboardInterrupt:
            print("stopped watching", file=sys.stderr)
        finally:
            feed.close()
            progress.done()
    if not ingested:
        raise ModelError(f"no frames came from {feed.label}; is the stream running?")
    print(f"watched {feed.label}: {seen} frames read, {ingested} into the model in "
          f"{duration(time.monotonic() - progress.started)}; answering", file=sys.stderr, flush=True)
    if note := domain_note(model):  # once, before the answer (which starts with UNRELIABLE)
        print(note, file=sys.stderr, flush=True)
    t0 = time.monotonic()
    first = None
    for piece in checked_answer(model, args.question, max_new_tokens=args.max_new_tokens):
        first = first if first is not None else time.monotonic()
        print(piece, end="", flush=True)
    done = time.monotonic()
    print(flush=True)
    ttft = ((first if first is not None else done) - t0) * 1e3
    print(f"{ingested} frames watched; first token {ttft:.0f} ms, total {(done - t0) * 1e3:.0f} ms", file=sys.stderr)
    return 0
