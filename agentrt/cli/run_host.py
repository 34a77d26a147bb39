"""`agentrt node`: run, on this host, the nodes a launch file places here (multi-host runs).

    # on the host named 'robot' under hosts: in the launch file (same file, same keys/ folder)
    agentrt node launch/two_hosts.yaml --host robot
    # on the main host, as usual: runs the nodes without host: (or host: local)
    agentrt run launch/two_hosts.yaml

Wires between hosts go over tcp with ZeroMQ CURVE (`agentrt keys`); each host
supervises its own nodes (restarts, heartbeats, Ctrl-C) and writes its own report.
"""

from __future__ import annotations

import argparse

from agentrt.cli import run as run_command
from agentrt.cli.common import add_no_status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("launch", help="launch file (YAML), the same one the main host runs")
    parser.add_argument("--host", required=True, help="this host's name under hosts: in the launch file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="override a node parameter (repeatable)")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    run_command.add_rerun(parser)
    parser.add_argument("--report-dir", default="runs", help="where the report folder goes (default: runs)")
    add_no_status(parser)


def run(args: argparse.Namespace) -> int:
    args.check = False
    return run_command.run(args)
