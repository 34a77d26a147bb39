"""`agentrt keys DIR`: make the CURVE key pairs for wires between hosts.

    agentrt keys keys/            # server + client key pairs, client key authorised
    agentrt keys keys/ --force    # replace existing keys

Copy DIR to every host and name it in the launch file (``keys: keys/``). A
peer without an authorised key gets nothing, and the server logs its public key
(once per key). Keep the *.key_secret files private.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="where to write the keys")
    parser.add_argument("--force", action="store_true", help="overwrite existing keys")


def run(args: argparse.Namespace) -> int:
    from agentrt.curve import make_keys  # pyzmq: imported here, so `agentrt` starts on a machine without it

    path = make_keys(args.directory, overwrite=args.force)
    print(f"wrote CURVE keys to {path}: server.key(_secret), client.key(_secret), authorized/client.key")
    return 0
