"""`agentrt bench NAME`: measured side by side in one run, printed as a table.

Every benchmark takes ``--quick`` (a reduced run, within 60 s on 2 cores) and
``--json PATH`` (raw figures plus machine and versions).

    agentrt bench transport --quick
    agentrt bench transport --json transport.json
    agentrt bench engine --quick
    agentrt bench sim --quick --json sim.json
    agentrt bench qa --quick --json qa.json
    agentrt bench vla --quick --threads 1          # the nano VLA's action decoding: ar, jacobi, consistency
    agentrt bench engine --quick --threads 1      # steadier ratios on a busy machine
    agentrt bench vla --device cuda --dtype bfloat16 --json vla-gpu.json
    agentrt bench vla --threads 1 --cd-weights runs/distill/nano_vla_cd.safetensors   # a candidate student beside the shipped one
    agentrt bench device --device cuda --json device.json   # vla, engine and qa on one device: one table
    agentrt bench fleet --robots 1 2 4 8 --json fleet.json     # one policy server, N simulated robots

The benches that run a model (``ON_DEVICE``) take ``--device auto|cpu|cuda[:N]`` (default auto: a GPU when
there is one) and ``--dtype float32|bfloat16``; every JSON records the device, the dtype and the
accelerator's name (the CPU's for the benches that run no model).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from agentrt.bench.report import check_writable, write_json
from agentrt.cli.common import add_device
from agentrt.errors import ConfigError

# benchmark name -> module with `run(quick: bool) -> dict` and `print_table(result: dict) -> None`; those in
# ON_DEVICE run a model and take `run(quick, device=..., dtype=...)`
BENCHMARKS: dict[str, str] = {
    "transport": "agentrt.bench.transport",
    "engine": "agentrt.bench.engine",
    "sim": "agentrt.bench.sim",
    "loop": "agentrt.bench.loop",
    "streams": "agentrt.bench.streams",
    "qa": "agentrt.bench.qa",
    "vla": "agentrt.bench.vla",
    "device": "agentrt.bench.device",
    "fleet": "agentrt.bench.fleet",
}
ON_DEVICE = frozenset({"engine", "qa", "vla", "device"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from policies.sweep import ENGINES

    parser.add_argument("name", help=f"one of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="reduced run (within 60 s on 2 cores)")
    parser.add_argument("--json", metavar="PATH", help="write the raw figures, machine and versions here")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch / OpenMP threads (default: the library's; 1 gives steadier ratios on a busy machine)")
    parser.add_argument("--robots", type=int, nargs="+", metavar="N",
                        help="bench fleet: the fleet sizes to measure (default 1 2 4 8; --quick: 1 2)")
    parser.add_argument("--replicas", type=int, default=1, metavar="R",
                        help="bench fleet: policy-server replicas, robot i on replica i mod R (default 1)")
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="bench fleet: replicas as local processes (default) or Ray actors (needs agentrt[ray])")
    parser.add_argument("--cd-weights", nargs="+", default=[], metavar="PATH",
                        help="bench vla: also the consistency default on these distilled weights, side by side "
                             "with the shipped ones (students compared in one run)")
    add_device(parser)


def run(args: argparse.Namespace) -> int:
    module_name = BENCHMARKS.get(args.name)
    if module_name is None:
        raise ConfigError(f"unknown benchmark '{args.name}': expected one of {', '.join(BENCHMARKS)}")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read when torch loads
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(args.threads)
    if args.json:
        check_writable(args.json)  # fail now, not after the whole benchmark has run
    from agentrt.engine.device import Placement

    on_device = args.name in ON_DEVICE
    if not on_device and (args.device not in ("auto", "cpu") or args.dtype != "float32"):
        raise ConfigError(f"bench {args.name} runs no model, so --device and --dtype do not apply; they do to "
                          f"{', '.join(sorted(ON_DEVICE))}")
    placement = Placement.parse(args.device if on_device else "cpu", args.dtype)  # no GPU here: one line, now
    if args.robots is not None and (args.name != "fleet" or min(args.robots) < 1):
        raise ConfigError("--robots takes fleet sizes >= 1, for bench fleet only")
    module = importlib.import_module(module_name)
    if (args.replicas != 1 or args.engine != "local") and args.name != "fleet":
        raise ConfigError("--replicas and --engine are for bench fleet only")
    if args.cd_weights and args.name != "vla":
        raise ConfigError("--cd-weights is for bench vla only")
    if args.name == "fleet":
        result = module.run(quick=args.quick, robots=tuple(args.robots) if args.robots else None,
                            replicas=args.replicas, engine=args.engine)
    elif args.name == "vla":
        result = module.run(quick=args.quick, device=str(placement.device), dtype=args.dtype,
                            cd_weights=tuple(args.cd_weights))
    elif on_device:
        result = module.run(quick=args.quick, device=str(placement.device), dtype=args.dtype)
    else:
        result = module.run(quick=args.quick)
    module.print_table(result)
    if args.json:
        path = write_json(args.json, args.name, result, quick=args.quick, placement=placement)
        print(f"wrote {path}")
    return 0
