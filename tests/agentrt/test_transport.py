"""Transport: latest-only and lossless delivery, bad input, shared memory, two processes, crash cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from agentrt import shm as shm_module
from agentrt.errors import ConfigError, TransportError
from agentrt.messages import ActionChunk, Answer, Frame, now_ns
from agentrt.shm import ShmRingReader, ShmRingWriter, segment_path
from agentrt.transport import Publisher, Subscriber, endpoint
from tests.agentrt.publisher_proc import pattern

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def isolated_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTRT_RUN_DIR", str(tmp_path))
    return tmp_path


def our_segments() -> set[str]:
    return {p.name for p in shm_module.SHM_DIR.glob(f"agentrt-{os.getpid()}-*")}


def wait_connected(pub: Publisher, sub: Subscriber, make) -> None:
    """PUB/SUB joins asynchronously: send until the first message arrives."""
    for _ in range(200):
        pub.send(make())
        if sub.recv(timeout_ms=20) is not None:
            return
    raise AssertionError("subscriber never connected")


def test_latest_only_gives_a_slow_consumer_the_newest_frame() -> None:
    address = endpoint("frames")
    with Publisher(address) as pub, Subscriber(address) as sub:
        image = np.zeros((32, 32, 3), np.uint8)
        wait_connected(pub, sub, lambda: Frame("cam", 0, now_ns(), image))
        for seq in range(1, 51):
            pub.send(Frame("cam", seq, now_ns(), image))
        time.sleep(0.2)  # the consumer was busy; 50 frames went by
        frame = sub.recv(timeout_ms=1000)
        assert isinstance(frame, Frame) and frame.seq == 50
        assert sub.recv(timeout_ms=100) is None  # no queue of stale frames behind it
        assert sub.stats.skipped == 49


def test_lossless_stream_keeps_order_and_detects_gaps() -> None:
    address = endpoint("actions")
    with Publisher(address, lossless=True) as pub, Subscriber(address, lossless=True) as sub:
        sent = [0, 1, 2, 3, 7, 8]
        for seq in sent:
            pub.send(ActionChunk("arm", seq, seq, now_ns(), "ee_delta", np.full((4, 7), seq, np.float32), 50.0))
        got = [sub.recv(timeout_ms=2000) for _ in sent]
        assert [m.seq for m in got] == sent
        assert all(np.all(m.actions == m.seq) for m in got)
        assert sub.stats.gaps == 3


def test_lossless_send_without_a_receiver_times_out_clearly() -> None:
    with Publisher(endpoint("nobody"), lossless=True, send_timeout_ms=100) as pub:
        with pytest.raises(TransportError, match="consumer running"):
            pub.send(Answer("q", 0, now_ns(), "hi"))


def test_receiver_counts_and_drops_bad_messages_and_keeps_going() -> None:
    address = endpoint("answers")
    with Subscriber(address, lossless=True) as sub:
        raw = zmq.Context.instance().socket(zmq.PUSH)
        raw.setsockopt(zmq.LINGER, 0)
        raw.bind(address)
        try:
            raw.send(b"")
            raw.send(b"garbage that is not a message")
            raw.send(b"AGRT\x09" + b"\0" * 40)  # a version from the future
            good = Answer("q-1", 0, now_ns(), "still here", done=True)
            from agentrt import wire

            raw.send(wire.encode(good))
            message = sub.recv(timeout_ms=2000)
        finally:
            raw.close()
        assert isinstance(message, Answer) and message.text == "still here"
        assert sub.stats.bad == 3 and "version 9" in sub.stats.last_error


def test_malformed_messages_ahead_of_a_good_one_do_not_delay_it() -> None:
    """Item 15.4: a receiver that takes what is waiting (``recv(timeout_ms=0)``) skips every malformed
    message to the good one behind them, instead of returning None at the first bad one."""
    from agentrt import wire

    address = "inproc://agentrt-test-malformed-flood"
    with Subscriber(address, lossless=True, bind=True) as sub:
        raw = zmq.Context.instance().socket(zmq.PUSH)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(address)
        try:
            for i in range(200):
                raw.send(b"not a message %d" % i)
            raw.send(wire.encode(Answer("q-1", 0, now_ns(), "behind the flood", done=True)))
            assert sub.socket.poll(2000)  # inproc: everything sent is queued by now
            message = sub.recv(timeout_ms=0)
        finally:
            raw.close()
        assert isinstance(message, Answer) and message.text == "behind the flood"
        assert sub.stats.bad == 200


def test_large_frames_on_ipc_go_through_shared_memory_and_are_exact() -> None:
    address = endpoint("big")
    image = pattern(3, 480, 640)
    with Publisher(address) as pub, Subscriber(address) as sub:
        wait_connected(pub, sub, lambda: Frame("cam", 0, now_ns(), image))
        pub.send(Frame("cam", 1, now_ns(), image))
        frame = sub.recv(timeout_ms=1000)
        assert isinstance(frame, Frame) and frame.shm is not None
        np.testing.assert_array_equal(frame.image, image)
        assert not frame.image.flags.writeable
        assert sub.intact(frame)
        assert len(our_segments()) == 1
    assert our_segments() == set()  # closed publisher removed its segment


def test_shm_torn_or_overwritten_slot_is_detected() -> None:
    with ShmRingWriter("torn", 64, slots=2, reaper=False) as writer:
        reader = ShmRingReader(writer.name)
        ref = writer.write(np.full(64, 1, np.uint8))
        view = reader.view(ref, (64,), np.dtype(np.uint8))
        assert view[0] == 1 and reader.intact(ref)
        writer.write(np.full(64, 2, np.uint8))
        writer.write(np.full(64, 3, np.uint8))  # laps the ring: slot 0 now holds another frame
        assert not reader.intact(ref)
        with pytest.raises(TransportError, match="overwritten"):
            reader.view(ref, (64,), np.dtype(np.uint8))
        del view
        reader.close()


def test_segment_names_from_the_wire_cannot_escape_the_shm_dir() -> None:
    for name in ["../../etc/passwd", "agentrt-1-x-zzzzzzzz", "/dev/shm/agentrt-1-x-0123abcd", "other"]:
        with pytest.raises(TransportError, match="not an agentrt segment"):
            segment_path(name)


def test_tcp_with_jpeg_across_hosts() -> None:
    y, x = np.mgrid[0:120, 0:160]
    image = np.stack([x, y, x + y], axis=-1).astype(np.uint8)
    with Publisher("tcp://127.0.0.1:*", encoding="jpeg") as pub:
        with Subscriber(pub.bound_address) as sub:
            wait_connected(pub, sub, lambda: Frame("cam", 0, now_ns(), image))
            pub.send(Frame("cam", 1, now_ns(), image))
            frame = sub.recv(timeout_ms=1000)
    assert isinstance(frame, Frame) and frame.shm is None
    assert np.abs(frame.image.astype(int) - image).mean() < 3


def test_bad_endpoints_and_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="endpoint must start"):
        Publisher("udp://127.0.0.1:1")
    with pytest.raises(ConfigError, match="ipc://"):
        Publisher("tcp://127.0.0.1:*", shm=True)
    with pytest.raises(ConfigError, match="plain name"):
        endpoint("../escape")


def start_publisher(address: str, mode: str, count: int, side: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
    process = subprocess.Popen(
        [sys.executable, str(HERE / "publisher_proc.py"), address, mode, str(count), str(side)],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


@pytest.mark.parametrize("mode", ["shm", "zmq"])
def test_two_process_round_trip(mode: str) -> None:
    address = endpoint(f"two-process-{mode}")
    with Subscriber(address) as sub:
        process = start_publisher(address, mode, -1, 256)
        try:
            seen = []
            for _ in range(20):
                frame = sub.recv(timeout_ms=5000)
                assert isinstance(frame, Frame)
                np.testing.assert_array_equal(frame.image, pattern(frame.seq, 256, 256))
                assert (frame.shm is not None) == (mode == "shm")
                assert 0 < now_ns() - frame.t_capture_ns < 5e9  # one monotonic clock for both processes
                seen.append(frame.seq)
            assert seen == sorted(seen)
        finally:
            process.kill()
            process.wait()


def test_killing_a_publisher_mid_stream_leaves_no_shared_memory_segment() -> None:
    address = endpoint("crash")
    with Subscriber(address) as sub:
        process = start_publisher(address, "shm", -1, 256)
        try:
            frame = sub.recv(timeout_ms=5000)
            assert isinstance(frame, Frame) and frame.shm is not None
            segment = shm_module.SHM_DIR / frame.shm.name
            assert segment.exists()
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        deadline = time.monotonic() + 5
        while segment.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not segment.exists(), "the reaper did not remove the dead publisher's segment"


def test_sweep_removes_segments_of_dead_owners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shm_module, "SHM_DIR", tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"agentrt-{dead.pid}-cam-0123abcd"
    live = tmp_path / f"agentrt-{os.getpid()}-cam-89abcdef"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    assert shm_module.sweep_stale() == [stale.name]
    assert live.exists() and not stale.exists()


def test_a_publisher_removes_the_ipc_socket_file_it_bound_and_no_other(tmp_path: Path) -> None:
    path = tmp_path / "out" / "frames"
    with Publisher(f"ipc://{path}", lossless=True):
        assert path.is_socket()
    assert not path.exists()  # an outside program never finds a dead endpoint
    first = Publisher(f"ipc://{path}")
    path.unlink()  # a program that takes no lock (not agentrt) binds the same path in its place
    context = zmq.Context.instance()
    foreign = context.socket(zmq.PULL)
    foreign.setsockopt(zmq.LINGER, 0)
    try:
        foreign.bind(f"ipc://{path}")
        first.close()
        assert path.is_socket()  # the first one leaves the new owner's file alone
    finally:
        foreign.close()


def test_an_ipc_endpoint_held_by_a_live_process_is_refused_naming_its_pid() -> None:
    address = endpoint("taken")
    process = start_publisher(address, "zmq", -1, 16)
    try:
        with pytest.raises(TransportError, match=rf"in use by pid {process.pid}\b"):
            Publisher(address)
        with pytest.raises(TransportError, match=rf"in use by pid {process.pid}\b"):
            Subscriber(address, lossless=True, bind=True)  # every kind of bind, not only publishers
        with Subscriber(address) as sub:  # and the holder still delivers
            assert isinstance(sub.recv(timeout_ms=5000), Frame)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    with Publisher(address) as pub:  # a killed holder leaves nothing that blocks the name
        assert pub.bound_address == address


def test_the_same_endpoint_twice_in_one_process_is_refused_until_closed(isolated_run_dir: Path) -> None:
    address = endpoint("twice")
    first = Publisher(address)
    with pytest.raises(TransportError, match=rf"in use by pid {os.getpid()}\b"):
        Publisher(address)
    first.close()
    with Publisher(address):
        pass
    assert sorted(p.name for p in isolated_run_dir.iterdir() if p.name.startswith("twice.")) == []  # no lock left


@pytest.mark.parametrize("connect_after_s", [0.0, 0.3])
def test_a_publisher_that_waits_for_its_subscribers_loses_no_first_message(connect_after_s: float) -> None:
    """start_after's promise (the consumers miss nothing) on a latest-only wire: the first message sent after
    wait_for_subscribers reaches a subscriber that connects early or late, with no send-until-it-arrives loop."""
    import threading

    address = endpoint("first")
    received: list[object] = []
    with Publisher(address) as pub:
        def subscribe() -> None:
            time.sleep(connect_after_s)
            with Subscriber(address) as sub:
                received.append(sub.recv(timeout_ms=5000))

        thread = threading.Thread(target=subscribe)
        thread.start()
        try:
            assert pub.wait_for_subscribers(1, timeout_s=5.0) == 1
            pub.send(Answer("q", 0, now_ns(), "a first message", True))
        finally:
            thread.join(timeout=10)
    assert len(received) == 1 and isinstance(received[0], Answer)


def test_waiting_for_subscribers_that_never_come_ends_at_its_timeout() -> None:
    with Publisher(endpoint("nobody")) as pub:
        assert pub.wait_for_subscribers(1, timeout_s=0.2) == 0
        assert pub.wait_for_subscribers(0, timeout_s=5.0) == 0
