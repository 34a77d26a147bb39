"""`agentrt policy-server`: the nano VLA's policy server, one or R replicas, until Ctrl-C or --duration.

    agentrt policy-server                                   # one server on tcp://127.0.0.1:7700
    agentrt policy-server --replicas 2                      # two processes: :7700 and :7701
    agentrt policy-server --replicas 4 --engine ray --address auto   # four Ray actors on the cluster's nodes
    agentrt policy-server --replicas 2 --port 0 --duration 60        # free ports, printed

It prints the endpoints, comma-separated: give them to the robots as their `server` param
(policies.vla.fleet: each robot asks one of them for good, picked by its `replica` index). A replica that
dies ends the command with one line naming it (its robots would get no chunks).
"""

from __future__ import annotations

import argparse
import signal
import threading
import time

from agentrt.cli.common import add_device, add_engine

__all__ = ["add_arguments", "run"]

CHECK_EVERY_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replicas", type=int, default=1, metavar="R", help="how many servers (default 1)")
    add_engine(parser)
    parser.add_argument("--port", type=int, default=7700,
                        help="replica i listens on port + i (default 7700; 0: free ports, printed)")
    parser.add_argument("--decoding", default="consistency", help="ar | jacobi | consistency (default consistency)")
    parser.add_argument("--weights", default="", help="checkpoint (default: the shipped weights for the decoding)")
    parser.add_argument("--window-ms", type=float, default=2.0, help="batching window per replica (default 2)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = until Ctrl-C)")
    add_device(parser, "cpu")


def run(args: argparse.Namespace) -> int:
    from policies.vla.replicas import ReplicaConfig, Replicas
    from policies.vla.server import PolicyServerNodeConfig

    replicas = ReplicaConfig(replicas=args.replicas, engine=args.engine, address=args.address, port=args.port)
    server = PolicyServerNodeConfig(decoding=args.decoding, weights=args.weights, window_ms=args.window_ms,
                                    device=args.device, dtype=args.dtype)
    previous = signal.getsignal(signal.SIGTERM)  # the command line's: SIGTERM ends the command as Ctrl-C does
    with Replicas(replicas, server) as running:
        if args.engine == "ray" and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)  # ray.init put its own: a stack dump and exit, no clean shutdown
        where = "Ray actors" if args.engine == "ray" else "processes"
        print(f"policy server: {args.replicas} replica(s) as {where}, {args.decoding} decoding", flush=True)
        print(f"endpoints: {','.join(running.endpoints)}", flush=True)
        started = time.monotonic()
        try:
            while not args.duration or time.monotonic() - started < args.duration:
                time.sleep(CHECK_EVERY_S)
                running.check()
        except KeyboardInterrupt:
            print("policy server: stopping", flush=True)
    served = sum(s.get("chunks", 0) for s in running.stats)
    print(f"policy server: served {served} chunks over {len(running.stats)} replica(s)")
    return 0
