"""docs/protocol.md stays true: its example bytes are what the encoder writes, its plain client works."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agentrt import wire
from agentrt.messages import Frame, now_ns
from agentrt.shm import ShmRingWriter
from agentrt.transport import SHM_MIN_BYTES, Publisher

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "protocol.md"


def doc_text() -> str:
    return DOC.read_text()


def client_code() -> str:
    """The example client of section 9, exactly as the page shows it."""
    code = doc_text().split("## 9. A client with plain pyzmq", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "import agentrt" not in code and "from agentrt" not in code
    return code


def client_namespace() -> dict:
    namespace: dict = {}
    exec(compile(client_code(), "protocol.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


def test_worked_example_bytes_match_the_encoder() -> None:
    section = doc_text().split("## 8. Worked example", 1)[1].split("```", 2)[1]
    hex_bytes = "".join(re.findall(r"^[0-9a-f]{4}  ((?:[0-9a-f]{2} ?)+)", section, flags=re.M)).split()
    documented = bytes(int(b, 16) for b in hex_bytes)
    image = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    assert bytes(wire.encode(Frame("cam", 7, 1000, image))) == documented


@pytest.mark.parametrize("shm", [False, True], ids=["raw", "shm"])
def test_plain_pyzmq_client_from_the_doc_receives_our_frames(tmp_path: Path, shm: bool) -> None:
    namespace = client_namespace()
    address = f"ipc://{tmp_path}/doc-client"
    image = (np.arange(128 * 192 * 3) % 251).astype(np.uint8).reshape(128, 192, 3)
    assert image.nbytes >= SHM_MIN_BYTES  # with shm=True it goes through the ring, not the message
    with Publisher(address, shm=shm) as publisher:
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


def test_the_doc_client_reads_shared_memory_slots_and_drops_overwritten_ones() -> None:
    read_shm = client_namespace()["read_shm"]
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(3)]
    with ShmRingWriter("doc", frames[0].nbytes, slots=2) as ring:
        refs = [ring.write(frame) for frame in frames]  # the third laps the first
        as_wire = [{"name": r.name, "slot": r.slot, "generation": r.generation} for r in refs]
        assert read_shm(as_wire[0], frames[0].nbytes) is None  # slot 0 now holds frame 2
        assert bytes(read_shm(as_wire[1], frames[1].nbytes)) == frames[1].tobytes()
        assert bytes(read_shm(as_wire[2], frames[2].nbytes)) == frames[2].tobytes()
        with pytest.raises(ValueError):
            read_shm({"name": "../etc/passwd", "slot": 0, "generation": 1}, 1)


def test_the_doc_client_as_written_gets_frames_from_agentrt_stream_defaults(tmp_path: Path) -> None:
    """`agentrt stream synthetic` with no options (frames in shared memory), then `python client.py`."""
    client = tmp_path / "client.py"
    client.write_text(client_code())
    env = {**os.environ, "AGENTRT_RUN_DIR": str(tmp_path / "run")}
    stream = subprocess.Popen([sys.executable, "-m", "agentrt.cli", "stream", "synthetic", "--quiet"], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        done = subprocess.run([sys.executable, str(client)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("the documented client did not return within 90 s")
    finally:
        stream.send_signal(signal.SIGINT)
        try:
            stream.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(stream.pid, signal.SIGKILL)
            stream.wait()
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("frame ")]
    assert len(lines) == 5, done.stdout
    assert all(": 640x480x3 uint8," in line for line in lines), done.stdout


def test_documented_header_tables_are_the_wire_schemas() -> None:
    """§3 lists each kind's keys in wire order and says which are required: exactly wire.SCHEMAS."""
    text = doc_text().split("## 3. Message kinds", 1)[1].split("## 4.", 1)[0]
    for kind, schema in wire.SCHEMAS.items():
        section = text.split(f"### {schema.cls.__name__} (kind {int(kind)})", 1)[1].split("###", 1)[0]
        cells = [re.split(r"(?<!\\)\|", line) for line in section.splitlines() if line.startswith("| `")]
        rows = [(cell[1].strip().strip("`"), cell[3].strip()) for cell in cells]  # (key, required)
        assert [key for key, _ in rows] == [field.key for field in schema.fields], schema.cls.__name__
        for (key, required), field in zip(rows, schema.fields, strict=True):
            assert required.startswith("yes") != field.optional, (schema.cls.__name__, key, required)
