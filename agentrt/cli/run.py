"""`agentrt run`: run the nodes of a launch file on this host, with a live status line and a report.

    agentrt run launch/pipeline_demo.yaml
    agentrt run launch/pipeline_demo.yaml --duration 10 --set camera.rate_hz=30 --set policy.work_ms=5
    agentrt run launch/pipeline_demo.yaml --check          # validate only, start nothing
    agentrt run sim.yaml --check                           # a shipped launch file by name, from any folder
    agentrt run sim.yaml --duration 20 --rerun runs/sim.rrd   # log frames, state, chunks, latency; `rerun runs/sim.rrd`
    agentrt run sim.yaml --rerun rerun+http://127.0.0.1:9876/proxy   # to a running viewer (start `rerun` first)

At start it prints one line per endpoint the launch file names under ``external:``
(where outside programs read the graph; docs/protocol.md §4).
--check validates the file (classes, params, wiring, --set values, robots and
tasks) and what its nodes on this host name on this machine (source files and
folders), and starts nothing. Ctrl-C (or SIGTERM) stops every node within 2 s.
Exit status: 0 when the run ended cleanly; 1 when a node failed, could not
start, was still failing or had never become ready when the run ended (the
node is named on stderr); 2 for a bad launch file or option. At exit the report
is written to runs/<name>-<time>/report.json and latency.png (``--report-dir``).
--rerun adds a node that logs to rerun (agentrt.nodes.rerun_sink) on latest-only wires: it never
slows the control path; it needs ``pip install 'agentrt[rerun]'``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from agentrt.cli.common import add_no_status
from agentrt.launch import LOCAL_HOST, LaunchSpec, check_launch, load_launch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("launch", help="launch file (YAML)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="override a node parameter (repeatable); the value is parsed as YAML")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    parser.add_argument("--check", action="store_true",
                        help="validate the launch file and what it names on this host, start nothing, and exit")
    parser.add_argument("--host", default=LOCAL_HOST, help=argparse.SUPPRESS)
    add_rerun(parser)
    parser.add_argument("--report-dir", default="runs", help="where the report folder goes (default: runs)")
    add_no_status(parser)


def add_rerun(parser: argparse.ArgumentParser) -> None:
    """--rerun, for `agentrt run` and `agentrt node` (the nodes of this host)."""
    parser.add_argument("--rerun", metavar="FILE.rrd|ADDRESS", default=None,
                        help="also log frames, robot state, action chunks, the instruction and latency (of the "
                             "nodes on this host) to rerun: a .rrd file, or a viewer's address "
                             "(rerun+http://HOST:9876/proxy)")


class _StatusLine:
    """One live line on a terminal (\\r), or a line every few seconds when not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.shown = False
        self.last_plain = 0.0

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + text[:200])
            sys.stderr.flush()
            self.shown = True
        elif time.monotonic() - self.last_plain > 5:
            self.last_plain = time.monotonic()
            print(f"status: {text}", file=sys.stderr, flush=True)

    def line(self, text: str) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[2K")
            self.shown = False
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            self.shown = False


def _print_external(spec: LaunchSpec, host: str | None) -> None:
    """One line per ``external:`` endpoint (of the nodes on ``host``; None: all) and how to read it."""
    for (node, output), endpoint in spec.external.items():
        if host is None or spec.nodes[node].host == host:
            port = spec.output_port(node, output)
            how = "lossless: connect a PULL" if port.lossless else "latest-only: connect a SUB with CONFLATE"
            print(f"external: {node}.{output} on {endpoint} ({port.message or 'messages'}, {how}; docs/protocol.md §4)")


def run(args: argparse.Namespace) -> int:
    from agentrt.supervisor import Supervisor

    spec = load_launch(args.launch, args.overrides)
    if args.rerun:
        from agentrt.nodes.rerun_sink import add_rerun_sink, import_rerun

        import_rerun()  # missing: one line with the install command, before anything starts
        wires = add_rerun_sink(spec, args.rerun, args.host)
        print(f"rerun: logging to {args.rerun} ({', '.join(wires)})")
    if args.check:
        check_launch(spec, args.host)
        print(f"{spec.path}: ok ({len(spec.nodes)} nodes: {', '.join(spec.nodes)})")
        _print_external(spec, None)
        return 0
    _print_external(spec, args.host)
    status = _StatusLine(not args.no_status)
    supervisor: Supervisor | None = None
    stopped: list[bool] = []

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopped.append(True)
        if supervisor is not None:
            supervisor.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:  # the handlers are in place before the supervisor makes anything: Ctrl-C leaves nothing behind
        supervisor = Supervisor(spec, host=args.host, output=status.line, status=status.show)
        supervisor.telemetry.prepare_report()  # so the report at exit takes a fraction of a second, not two
        if stopped:
            supervisor.shutdown()  # nothing started yet: remove its run folder
            print(f"agentrt {args.command}: interrupted", file=sys.stderr)
            return 130
        code = supervisor.run(duration_s=args.duration)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        status.close()
    folder = Path(args.report_dir) / f"{spec.name}-{args.host}-{time.strftime('%Y%m%d-%H%M%S')}"
    json_path, png_path = supervisor.telemetry.write_report(folder)
    print(f"{supervisor.telemetry.status_line()}")
    for line in supervisor.telemetry.count_lines():  # where the dropped / bad / refused messages were
        print(f"  {line}")
    print(f"stopped {len(supervisor.procs)} node(s) in {supervisor.shutdown_s:.2f} s")
    print(f"report: {json_path}" + (f", {png_path}" if png_path else ""))
    if supervisor.failure:
        print(f"agentrt {args.command}: error: {supervisor.failure}", file=sys.stderr)
    return code
