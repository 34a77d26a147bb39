"""`agentrt`: the command line.

Each subcommand lives in its own module with two functions:
``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy
backends (torch, pybullet, cv2) inside ``run`` so `agentrt --help` stays fast.

    agentrt --version
    agentrt demo
    agentrt bench transport --quick
    agentrt bench engine --quick --json engine.json
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from agentrt.errors import AgentRTError

# subcommand -> (module, one-line help). The one table that maps names to code.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("agentrt.cli.demo", "run the main demo (see README)"),
    "bench": ("agentrt.cli.bench", "run a benchmark and print a side-by-side table"),
    "sim": ("agentrt.cli.sim", "run a PyBullet task with its scripted expert"),
    "run": ("agentrt.cli.run", "run the nodes of a launch file, supervised, with a live status and a report"),
    # not agentrt/cli/node.py: a module named node.py holds a Node (docs/runtime.md)
    "node": ("agentrt.cli.run_host", "run the nodes a launch file places on this host (multi-host)"),
    "keys": ("agentrt.cli.keys", "make CURVE key pairs for wires between hosts"),
    "stream": ("agentrt.cli.stream", "publish a camera, file, network stream, folder or synthetic source"),
    "record": ("agentrt.cli.record", "record a stream to MP4 with a sidecar of capture times"),
    "view": ("agentrt.cli.view", "look at a stream: a window, an MJPEG page on localhost, or saved frames"),
    "bridge": ("agentrt.cli.bridge", "serve a real arm over tcp + CURVE to a model elsewhere (run on the robot's computer)"),
    "collect": ("agentrt.cli.collect", "record scripted-expert demonstrations (LeRobot-shaped dataset)"),
    "train": ("agentrt.cli.train", "train the nano VLA (resumable, seeded, lockstep eval along the way)"),
    "collect-qa": ("agentrt.cli.collect_qa", "render seeded sim scenes for the nano video-QA model"),
    "train-qa": ("agentrt.cli.train_qa", "train the nano video-QA model (resumable, seeded)"),
    "qa-domain": ("agentrt.cli.qa_domain", "calibrate or measure the nano QA model's out-of-domain check"),
    "distill": ("agentrt.cli.distill", "consistency-distil the nano VLA for early-exit Jacobi decoding"),
    "train-hfvla": ("agentrt.cli.train_hfvla", "train or distil a small SmolVLM-architecture VLA (Hugging Face format)"),
    "eval": ("agentrt.cli.eval", "evaluate a policy: tasks x decoding x clock, success and speed"),
    "ask": ("agentrt.cli.ask", "ask a question about a live stream, a file or a running `agentrt serve`"),
    "policy-server": ("agentrt.cli.policy_server", "the nano VLA's policy server for a fleet: one or R replicas (processes or Ray actors)"),
    "serve": ("agentrt.cli.serve", "camera + VideoLLM + a web page on localhost: live video, questions, streamed answers"),
}


def version() -> str:
    """The installed package's version (pyproject.toml), else the source tree's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("agentrt")
    except PackageNotFoundError:  # run from a source tree that is not installed
        from agentrt import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentrt", description="A real-time runtime for agents that see.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"agentrt {version()}", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a subcommand whose module is not installed in this build
        command_parser = sub.add_parser(
            name,
            help=help_text,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:  # Ctrl-C while the subcommands load (imports take a moment): one line, no traceback
        parser = build_parser()
    except KeyboardInterrupt:
        print("agentrt: interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    in_main_thread = threading.current_thread() is threading.main_thread()  # signals are the main thread's
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return int(args._run(args) or 0)
    except AgentRTError as exc:
        print(f"agentrt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave: not writable, a directory, missing parent
        where = f": {exc.filename}" if exc.filename else ""
        print(f"agentrt {args.command}: error: {exc.strerror or exc}{where}; check the path and its permissions",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"agentrt {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` removes what its command made (temp folders, sockets)."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
