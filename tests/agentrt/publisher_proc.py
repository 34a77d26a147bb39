"""A publisher process for the two-process transport tests: python publisher_proc.py ENDPOINT SHM N SIZE."""

from __future__ import annotations

import sys
import time

import numpy as np

from agentrt.messages import Frame, now_ns
from agentrt.transport import Publisher


def pattern(seq: int, height: int, width: int) -> np.ndarray:
    """A frame whose content depends on seq, so the receiver can check every pixel."""
    row = (np.arange(width, dtype=np.uint16) + seq) % 256
    return np.broadcast_to(row.astype(np.uint8)[None, :, None], (height, width, 3)).copy()


def main() -> None:
    address, shm, count, side = sys.argv[1], sys.argv[2] == "shm", int(sys.argv[3]), int(sys.argv[4])
    with Publisher(address, shm=shm) as publisher:
        print("ready", flush=True)
        seq = 0
        while count < 0 or seq < count:  # count < 0: until killed
            publisher.send(Frame("cam", seq, now_ns(), pattern(seq, side, side)))
            seq += 1
            time.sleep(0.01)


if __name__ == "__main__":
    main()
