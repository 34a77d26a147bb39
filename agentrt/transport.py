"""Streams of messages over ZeroMQ: latest-only and lossless.

- **latest-only** (frames, robot state): PUB -> SUB with ``CONFLATE`` on the
  subscriber, so a slow consumer always gets the newest message, never a queue
  of stale ones. Messages are single-part (CONFLATE breaks on multipart).
- **lossless** (action chunks, answers): PUSH -> PULL; the sender blocks up to
  ``send_timeout_ms`` rather than drop, and the receiver detects gaps by ``seq``.

Large frames on an ``ipc://`` endpoint go through a shared-memory ring
(`agentrt.shm`) and only a small notice travels over ZeroMQ. Across hosts
(``tcp://``) frames can be JPEG-encoded. Receivers count and drop malformed
messages and keep going.

    with Publisher("ipc:///tmp/agentrt-demo/frames") as pub:
        pub.send(Frame("cam", seq, now_ns(), image))

    with Subscriber("ipc:///tmp/agentrt-demo/frames") as sub:
        frame = sub.recv(timeout_ms=1000)   # None on timeout
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from agentrt import runfiles, wire
from agentrt.endpoint_lock import EndpointLock
from agentrt.errors import ConfigError, ProtocolError, TransportError
from agentrt.messages import Frame, FrameRef, Message, ShmRef
from agentrt.shm import ShmRingReader, ShmRingWriter

__all__ = ["Publisher", "Subscriber", "TransportStats", "endpoint", "run_dir", "SHM_MIN_BYTES"]

log = logging.getLogger(__name__)

# pyzmq copies frames under 64 KiB even with copy=False, so the ring only pays off above that.
SHM_MIN_BYTES = 64 * 1024
_SUBSCRIPTION_GRACE_S = 0.02  # after a subscriber's handshake, for its subscription to arrive

SocketSetup = Callable[[zmq.Socket], None]


def run_dir() -> Path:
    """Where ipc endpoints live: $AGENTRT_RUN_DIR, else a per-user folder in the temp dir."""
    configured = os.environ.get("AGENTRT_RUN_DIR")
    path = Path(configured) if configured else Path(tempfile.gettempdir()) / f"agentrt-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def endpoint(name: str, *, host: str | None = None, port: int | None = None) -> str:
    """The endpoint of a named stream: ``ipc://<run_dir>/<name>`` on one host, ``tcp://host:port`` across hosts."""
    if host is not None or port is not None:
        if host is None or port is None:
            raise ConfigError(f"a tcp endpoint needs both host and port, got host={host!r} port={port!r}")
        return f"tcp://{host}:{port}"
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"stream name must be a plain name like 'camera.frames', got {name!r}")
    return f"ipc://{run_dir() / name}"


@dataclass
class TransportStats:
    sent: int = 0
    send_dropped: int = 0  # latest-only: nobody listening or the subscriber is stuck
    received: int = 0
    bad: int = 0  # malformed messages dropped (see last_error)
    gaps: int = 0  # lossless: messages missing between two received seqs
    skipped: int = 0  # latest-only: older messages replaced by newer ones before we read them
    torn: int = 0  # shared-memory slot overwritten before it was read
    last_error: str = ""
    _last_seq: OrderedDict[tuple[int, str], int] = field(default_factory=OrderedDict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


def _open_socket(context: zmq.Context | None, socket_type: int, address: str, bind: bool,
                 options: dict[int, int | bytes], socket_setup: SocketSetup | None,
                 ) -> tuple[zmq.Socket, EndpointLock | None]:
    """A socket with ``options`` set before bind / connect (CONFLATE must be), closed again on failure.

    Binding an ipc endpoint first takes its lock (`agentrt.endpoint_lock`): a bind would
    otherwise silently take the endpoint over from a live process.
    """
    lock = EndpointLock.acquire(address) if bind else None
    sock = (context or zmq.Context.instance()).socket(socket_type)
    try:
        for option, value in options.items():
            sock.setsockopt(option, value)
        if socket_setup:
            socket_setup(sock)
        (sock.bind if bind else sock.connect)(address)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        if lock is not None:
            lock.release()
        in_use = bind and exc.errno in (zmq.EADDRINUSE, zmq.EADDRNOTAVAIL)  # a retry meets the same holder
        raise TransportError(f"cannot {'bind' if bind else 'connect'} {address}: {exc}", permanent=in_use) from None
    except BaseException:
        sock.close(linger=0)
        if lock is not None:
            lock.release()
        raise
    return sock, lock


def _prepare_endpoint(address: str, bind: bool) -> None:
    if address.startswith("ipc://") and bind:
        folder = Path(address[len("ipc://") :]).parent
        folder.mkdir(parents=True, exist_ok=True)
        runfiles.sweep_once(folder)  # socket files and run folders that dead processes left there
    elif not address.startswith(("ipc://", "tcp://", "inproc://")):
        raise ConfigError(f"endpoint must start with ipc://, tcp:// or inproc://, got {address!r}")


class Publisher:
    """Sends messages on one endpoint. Binds by default; see module docstring for the two modes.

    ``shm``: None = automatic (ipc endpoints, frames of 64 KiB or more), True / False to force.
    ``encoding``: "raw" or "jpeg" for frames (jpeg for uint8 frames across hosts).
    """

    def __init__(
        self,
        address: str,
        *,
        lossless: bool = False,
        bind: bool = True,
        shm: bool | None = None,
        shm_slots: int = 8,
        encoding: str = "raw",
        jpeg_quality: int = 80,
        send_timeout_ms: int = 2000,
        context: zmq.Context | None = None,
        socket_setup: SocketSetup | None = None,
    ) -> None:
        if encoding not in ("raw", "jpeg"):
            raise ConfigError(f"encoding must be 'raw' or 'jpeg', got {encoding!r}")
        if shm and not address.startswith("ipc://"):
            raise ConfigError(f"shared-memory frames need an ipc:// endpoint (one host), got {address!r}")
        _prepare_endpoint(address, bind)
        self.address = address
        self.lossless = lossless
        self.stats = TransportStats()
        self._encoding = encoding
        self._jpeg_quality = jpeg_quality
        self._use_shm = address.startswith("ipc://") if shm is None else shm
        self._shm_slots = shm_slots
        self._ring: ShmRingWriter | None = None
        self._stream_name = Path(address).name
        options: dict[int, int | bytes]
        if lossless:
            options = {zmq.LINGER: 1000, zmq.SNDTIMEO: send_timeout_ms}
        else:
            # Keep only the newest outgoing message per subscriber: a burst or a stalled
            # subscriber never queues stale frames, and the newest is never the one dropped.
            options = {zmq.LINGER: 0, zmq.CONFLATE: 1}
        self._socket, self._lock = _open_socket(context, zmq.PUSH if lossless else zmq.PUB, address, bind, options,
                                                socket_setup)
        self.bound_address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT) if bind else address
        self._socket_file = runfiles.bound_socket(address) if bind else None  # ZeroMQ leaves it: we remove it

    def wait_for_subscribers(self, count: int, timeout_s: float) -> int:
        """Wait until ``count`` peers have connected (handshake done) or ``timeout_s`` passes; how many did.

        Latest-only: a message sent before a subscriber is there is gone for it. A node started after its
        consumers (``start_after``) waits here so its first message reaches them.
        """
        if count <= 0:
            return 0
        monitor = self._socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        connected = 0
        deadline = time.monotonic() + timeout_s
        try:
            while connected < count and (left := deadline - time.monotonic()) > 0:
                if monitor.poll(max(1, int(left * 1e3))):
                    if recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                        connected += 1
        finally:
            self._socket.disable_monitor()
            monitor.close(linger=0)
        if connected >= count:
            time.sleep(_SUBSCRIPTION_GRACE_S)  # the subscription follows the handshake on the peer's I/O thread
        return connected

    def send(self, message: Message, *, give_up: Callable[[], bool] | None = None) -> bool:
        """Send one message. Latest-only: returns False if it was dropped. Lossless: raises on timeout.

        ``give_up`` (lossless): checked every 50 ms while the receiver is not taking the message;
        when it says True the wait ends with the same TransportError as a timeout (a node that
        must stop never waits out ``send_timeout_ms`` for a consumer that has already gone).
        """
        buffer = self._encode(message)
        try:
            if self.lossless and give_up is not None:
                self._send_unless(buffer, give_up)
            elif self.lossless:
                self._socket.send(buffer, copy=False)
            else:
                self._socket.send(buffer, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            if self.lossless:
                raise TransportError(
                    f"no receiver took a message on {self.address} in time; is the consumer running?"
                ) from None
            self.stats.send_dropped += 1
            return False
        self.stats.sent += 1
        return True

    def _send_unless(self, buffer: bytearray, give_up: Callable[[], bool]) -> None:
        timeout_ms = int(self._socket.getsockopt(zmq.SNDTIMEO))
        deadline = None if timeout_ms < 0 else _now_ms() + timeout_ms  # -1: wait as long as it takes
        while True:
            try:
                self._socket.send(buffer, zmq.NOBLOCK, copy=False)
                return
            except zmq.Again:
                remaining = 50 if deadline is None else deadline - _now_ms()
                if remaining <= 0 or give_up():
                    raise
                self._socket.poll(min(50, remaining), zmq.POLLOUT)

    def _encode(self, message: Message) -> bytearray:
        if isinstance(message, Frame) and self._use_shm and message.image.nbytes >= SHM_MIN_BYTES:
            ref = self._ring_for(message.image.nbytes).write(message.image)
            header_only = FrameRef(
                message.stream, message.seq, message.t_capture_ns, message.width, message.height,
                message.channels, message.image.dtype.name, message.pixel_format, ref, message.hops,
            )
            return wire.encode(header_only)
        return wire.encode(message, encoding=self._encoding, jpeg_quality=self._jpeg_quality)

    def _ring_for(self, nbytes: int) -> ShmRingWriter:
        if self._ring is None or self._ring.slot_bytes < nbytes:
            if self._ring is not None:
                self._ring.close()  # readers keep their mapping of the old segment until they move on
            self._ring = ShmRingWriter(self._stream_name, nbytes, slots=self._shm_slots)
        return self._ring

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.close()
        # The socket file goes before the lock: the next holder of the name never finds our dead socket.
        runfiles.remove_socket(self._socket_file)
        self._socket_file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._ring is not None:
            self._ring.close()
            self._ring = None

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


MAX_SKIP_LATE = 10_000  # malformed messages one recv() skips past its deadline (more than a default queue holds)


class Subscriber:
    """Receives messages from one endpoint. Connects by default.

    Malformed messages are counted in ``stats.bad`` and dropped; ``recv`` goes on
    waiting for a good one within its timeout.
    """

    def __init__(
        self,
        address: str,
        *,
        lossless: bool = False,
        bind: bool = False,
        max_payload_bytes: int = 1 << 30,
        context: zmq.Context | None = None,
        socket_setup: SocketSetup | None = None,
    ) -> None:
        _prepare_endpoint(address, bind)
        self.address = address
        self.lossless = lossless
        self.stats = TransportStats()
        self._max_payload = max_payload_bytes
        self._readers: OrderedDict[str, ShmRingReader] = OrderedDict()
        options: dict[int, int | bytes] = {zmq.LINGER: 0}
        if address.startswith("ipc://") and not bind:
            # a producer started after us (start_after) binds a moment later: retry the connect every 10 ms,
            # not every 100 ms, so its first frames are not sent before we are there (a failed ipc connect is cheap)
            options[zmq.RECONNECT_IVL] = 10
        if not lossless:
            options.update({zmq.CONFLATE: 1, zmq.SUBSCRIBE: b""})
        self._socket, self._lock = _open_socket(context, zmq.PULL if lossless else zmq.SUB, address, bind, options,
                                                socket_setup)
        self._socket_file = runfiles.bound_socket(address) if bind else None
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)

    @property
    def socket(self) -> zmq.Socket:
        """The ZeroMQ socket, for zmq.Poller in nodes that wait on several inputs."""
        return self._socket

    def recv(self, timeout_ms: int | None = None) -> Message | None:
        """The next good message, or None when ``timeout_ms`` passes (None = wait forever).

        Malformed messages are skipped, also past the deadline while more are already waiting
        (up to ``MAX_SKIP_LATE`` of them), so bad messages queued ahead of a good one never delay
        it to a later call: ``recv(timeout_ms=0)`` returns the good one.
        """
        deadline = None if timeout_ms is None else _now_ms() + timeout_ms
        late = 0
        while True:
            remaining = None if deadline is None else max(0, deadline - _now_ms())
            if not self._poller.poll(remaining):
                return None
            raw = self._socket.recv(copy=False)
            message = self._accept(raw)
            if message is not None:
                return message
            if deadline is not None and _now_ms() >= deadline:
                late += 1
                if late > MAX_SKIP_LATE:  # a flood: give the caller its turn, the rest waits for the next call
                    return None

    def intact(self, frame: Frame) -> bool:
        """For a frame from shared memory: is its slot still unchanged? (Always true for other frames.)"""
        return frame.intact()

    def _accept(self, raw: Any) -> Message | None:
        try:
            message = wire.decode(raw, max_payload_bytes=self._max_payload)
            if isinstance(message, FrameRef):
                message = self._resolve(message)
        except ProtocolError as exc:
            self.stats.bad += 1
            self.stats.last_error = str(exc)
            if self.stats.bad == 1 or self.stats.bad % 100 == 0:
                log.warning("dropped malformed message on %s (%d so far): %s", self.address, self.stats.bad, exc)
            return None
        except TransportError as exc:
            self.stats.torn += 1
            self.stats.last_error = str(exc)
            return None
        self.stats.received += 1
        self._track_seq(message)
        return message

    def _resolve(self, ref: FrameRef) -> Frame:
        reader = self._readers.get(ref.shm.name)
        if reader is None:
            reader = ShmRingReader(ref.shm.name)
            self._readers[ref.shm.name] = reader
            while len(self._readers) > 4:  # the publisher replaced its ring: forget old ones
                self._readers.popitem(last=False)[1].close()
        shape = (ref.height, ref.width, ref.channels)
        image = reader.view(ref.shm, shape, wire.DTYPES[ref.dtype])
        return Frame(ref.stream, ref.seq, ref.t_capture_ns, image, ref.pixel_format, ref.hops, shm=ref.shm,
                     slot_intact=functools.partial(self._slot_intact, ref.shm))

    def _slot_intact(self, ref: ShmRef) -> bool:
        reader = self._readers.get(ref.name)  # gone once the ring was replaced or this subscriber closed
        return reader is not None and reader.intact(ref)

    def _track_seq(self, message: Message) -> None:
        source = getattr(message, "stream", None) or getattr(message, "robot", None) or getattr(
            message, "query_id", None) or getattr(message, "node", None) or getattr(message, "id", "")
        key = (int(message.kind), str(source))
        last = self.stats._last_seq.get(key)
        seq = message.seq
        if last is not None and seq > last + 1:
            if self.lossless:
                self.stats.gaps += seq - last - 1
                log.warning("gap on %s: %d message(s) missing before seq %d", self.address, seq - last - 1, seq)
            else:
                self.stats.skipped += seq - last - 1
        self.stats._last_seq[key] = seq  # a smaller seq means the sender restarted: start over from it
        self.stats._last_seq.move_to_end(key)
        if len(self.stats._last_seq) > 1024:
            self.stats._last_seq.popitem(last=False)

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.close()
        runfiles.remove_socket(self._socket_file)
        self._socket_file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000
