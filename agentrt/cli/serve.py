"""`agentrt serve`: camera -> VideoLLM -> a web page on localhost: live video, a question box, answers streaming in.

    agentrt serve                                           # synthetic stream, the bundled nano model
    agentrt serve --model hf:models/SmolVLM2-256M-Video-Instruct
    agentrt serve --source clip.mp4                         # a file (loops) instead of the synthetic stream
    agentrt serve --camera 0                                # a real camera
    agentrt serve --port 0 --duration 60                    # any free port (logged), stop after a minute
    agentrt serve --device cuda --dtype bfloat16            # the model on a GPU (default auto: a GPU when there is one)

Open the printed URL, type a question, press Ask: the answer streams in with
its time to first token and total time. The nodes (camera, qa, web) run
supervised as `agentrt run launch/camera_qa.yaml` runs them (that shipped file,
its options set from these flags); Ctrl-C stops them all. Ask from a terminal too:
`agentrt ask "what changed?" --server http://127.0.0.1:8765`.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from agentrt.cli.common import add_device
from agentrt.errors import ConfigError
from agentrt.resources import launch_dir
from policies.qa.videoqa import MODEL_SPECS

SERVE_LAUNCH = launch_dir() / "camera_qa.yaml"  # the graph serve runs: one file for `run` and `serve`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--source", default="synthetic:320x240@15", metavar="SOURCE",
                       help="frames: synthetic[:WxH@FPS], a file, rtsp://..., camera:N (default: synthetic:320x240@15)")
    where.add_argument("--camera", metavar="N", help="a real camera (same as --source camera:N)")
    parser.add_argument("--model", default="nano", help=f"{MODEL_SPECS} (default: nano)")
    add_device(parser)
    parser.add_argument("--port", type=int, default=8765, help="web page port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--ingest-hz", type=float, default=4.0, help="frames per second into the model (0 = all it can)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="longest answer in tokens")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="any other node parameter of launch/camera_qa.yaml (repeatable)")


def _quoted(value: str) -> str:
    """A --set value taken as a string whatever it looks like (YAML would read 0 as a number)."""
    return "'" + value.replace("'", "''") + "'"


def run(args: argparse.Namespace) -> int:
    from agentrt.engine.device import Placement
    from agentrt.launch import load_launch
    from agentrt.supervisor import Supervisor
    from policies.qa.node import check_qa_model

    check_qa_model(args.model)  # one line now, not a node failing after start
    Placement.parse(args.device, args.dtype)  # the same: a GPU asked for and not here
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port: expected 0..65535, got {args.port}")
    source = f"camera:{args.camera}" if args.camera is not None else args.source
    file_source = not source.startswith(("synthetic", "camera", "/dev/video")) and "://" not in source
    overrides = [
        f"camera.source={_quoted(source)}",
        f"qa.model={_quoted(args.model)}",
        f"qa.device={_quoted(args.device)}",
        f"qa.dtype={_quoted(args.dtype)}",
        f"qa.ingest_hz={args.ingest_hz}",
        f"qa.max_new_tokens={args.max_new_tokens}",
        f"web.port={args.port}",
    ]
    if file_source:
        overrides.append("camera.params={loop: true}")  # a file plays on while people ask
    spec = load_launch(SERVE_LAUNCH, overrides + list(args.overrides))
    spec.name = "serve"  # its run folder and telemetry say which command ran
    supervisor = Supervisor(spec, output=lambda line: print(line, flush=True), status=lambda _text: None)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        supervisor.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    if args.port:
        print(f"agentrt serve: open http://127.0.0.1:{args.port}/ (model {args.model} loading; Ctrl-C to stop)",
              flush=True)
    try:
        code = supervisor.run(duration_s=args.duration)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"stopped {len(supervisor.procs)} node(s) in {supervisor.shutdown_s:.2f} s", flush=True)
    if supervisor.failure:
        print(f"agentrt serve: error: {supervisor.failure}", file=sys.stderr)
    return code
