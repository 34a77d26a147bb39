"""`agentrt bench NAME`: measured side by side in one run, printed as a table.

Every benchmark takes ``--quick`` (a reduced run, within 60 s on 2 cores) and
``--json PATH`` (raw figures plus machine and versions).

    agentrt bench transport --quick
    agentrt bench transport --json transport.json
    agentrt bench engine --quick
    agentrt bench sim --quick --json sim.json
"""

from __future__ import annotations

import argparse
import importlib

from agentrt.bench.report import write_json
from agentrt.errors import ConfigError

# benchmark name -> module with `run(quick: bool) -> dict` and `print_table(result: dict) -> None`
BENCHMARKS: dict[str, str] = {
    "transport": "agentrt.bench.transport",
    "engine": "agentrt.bench.engine",
    "sim": "agentrt.bench.sim",
    "loop": "agentrt.bench.loop",
    "streams": "agentrt.bench.streams",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help=f"one of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="reduced run (within 60 s on 2 cores)")
    parser.add_argument("--json", metavar="PATH", help="write the raw figures, machine and versions here")


def run(args: argparse.Namespace) -> int:
    module_name = BENCHMARKS.get(args.name)
    if module_name is None:
        raise ConfigError(f"unknown benchmark '{args.name}': expected one of {', '.join(BENCHMARKS)}")
    module = importlib.import_module(module_name)
    result = module.run(quick=args.quick)
    module.print_table(result)
    if args.json:
        path = write_json(args.json, args.name, result, quick=args.quick)
        print(f"wrote {path}")
    return 0
