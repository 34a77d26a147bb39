"""The sending side of `agentrt bench transport`, run in its own process.

    python -m agentrt.bench.transport_peer '{"address": ..., "control": ..., "method": "shm", ...}'

Modes:
  lockstep  send frame seq, wait for the receiver's ack of seq (resend if none), repeat `count` times
  burst     send back to back for `duration_s`
  paced     send at `rate_hz` for `duration_s`
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import zmq

from agentrt.messages import Frame, now_ns
from agentrt.transport import Publisher


def main(spec: dict) -> None:
    height, width = spec["height"], spec["width"]
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    method = spec["method"]
    publisher = Publisher(spec["address"], shm=(method == "shm"))
    control: zmq.Socket = zmq.Context.instance().socket(zmq.PULL)
    control.setsockopt(zmq.LINGER, 0)
    control.connect(spec["control"])
    try:
        if spec["mode"] == "lockstep":
            _lockstep(publisher, control, image, spec["count"])
        else:
            period = 0.0 if spec["mode"] == "burst" else 1.0 / spec["rate_hz"]
            _stream(publisher, image, spec["duration_s"], period)
        control.recv()  # the receiver says when it is done, so no frame is torn down under it
    finally:
        control.close()
        publisher.close()


def _lockstep(publisher: Publisher, control: zmq.Socket, image: np.ndarray, count: int) -> None:
    seq = 0
    while seq < count:
        publisher.send(Frame("bench", seq, now_ns(), image))
        if control.poll(200):  # the first frames may go before the subscriber has joined: resend
            acked = int(control.recv())
            if acked == seq:
                seq += 1


def _stream(publisher: Publisher, image: np.ndarray, duration_s: float, period_s: float) -> None:
    start = time.monotonic()
    seq = 0
    next_time = start
    while time.monotonic() - start < duration_s:
        publisher.send(Frame("bench", seq, now_ns(), image))
        seq += 1
        if period_s:
            next_time += period_s
            delay = next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
