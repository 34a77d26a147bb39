"""docs/protocol.md stays true: its example bytes are what the encoder writes, its plain client works."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from agentrt import wire
from agentrt.messages import Frame, now_ns
from agentrt.transport import Publisher

DOC = Path(__file__).parents[2] / "docs" / "protocol.md"


def doc_text() -> str:
    return DOC.read_text()


def test_worked_example_bytes_match_the_encoder() -> None:
    section = doc_text().split("## 8. Worked example", 1)[1].split("```", 2)[1]
    hex_bytes = "".join(re.findall(r"^[0-9a-f]{4}  ((?:[0-9a-f]{2} ?)+)", section, flags=re.M)).split()
    documented = bytes(int(b, 16) for b in hex_bytes)
    image = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    assert bytes(wire.encode(Frame("cam", 7, 1000, image))) == documented


def test_plain_pyzmq_client_from_the_doc_receives_our_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = doc_text().split("## 9. A client with plain pyzmq", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "import agentrt" not in code and "from agentrt" not in code
    namespace: dict = {}
    exec(compile(code, "protocol.md", "exec"), namespace)  # noqa: S102 - our own documentation
    address = f"ipc://{tmp_path}/doc-client"
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    with Publisher(address, shm=False) as publisher:
        import threading

        stop = threading.Event()

        def publish() -> None:
            seq = 0
            while not stop.is_set():
                publisher.send(Frame("cam", seq, now_ns(), image))
                seq += 1
                time.sleep(0.005)

        thread = threading.Thread(target=publish)
        thread.start()
        try:
            frames = namespace["receive_frames"](address, 3)
        finally:
            stop.set()
            thread.join()
    assert len(frames) == 3
    for _seq, received, age_ms in frames:
        np.testing.assert_array_equal(received, image)
        assert 0 <= age_ms < 5000
