"""`QAServer`: a page on localhost with the live video, a question box and answers streaming in.

Routes (stdlib ``http.server``, one thread per request):

==================  ========================================================
``GET /``           the page (page.html)
``GET /frame.jpg``  the newest frame as one JPEG (the page polls it)
``GET /ask?q=...``  Server-Sent Events: ``data: {"text": ...}`` per piece,
                    then ``event: done`` with ``{"ttft_ms", "total_ms"}``
                    (or ``event: error`` with ``{"error"}``)
``GET /status``     JSON: frames seen, whether the model is ready
==================  ========================================================

The server never touches a socket of the node: questions wait in ``outbox``
for the node's thread to send, answers come back through ``deliver()``
(ZeroMQ sockets are not thread-safe). It binds 127.0.0.1 by default.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

from agentrt.codecs import jpeg_encode
from agentrt.errors import FrameTornError
from agentrt.httpd import BackgroundHTTPServer, QuietHandler
from agentrt.messages import Answer, Frame, Query, now_ns
from agentrt.pixels import to_bgr

__all__ = ["QAServer"]

log = logging.getLogger(__name__)

_PAGE = Path(__file__).with_name("page.html")
MAX_QUESTION_CHARS = 500


class QAServer(BackgroundHTTPServer):
    """The page's HTTP server, run on a background thread; the owning node moves messages in and out."""

    def __init__(self, port: int = 8765, host: str = "127.0.0.1", quality: int = 80, max_width: int = 640,
                 answer_timeout_s: float = 120.0) -> None:
        super().__init__(host, port, "qa-web")
        self.quality, self.max_width = quality, max_width
        self.answer_timeout_s = answer_timeout_s
        self.outbox: queue.Queue[Query] = queue.Queue()
        self.ready = False  # the node sets it once the model answers (its upstream is ready)
        self.frames = 0
        self._frame: Frame | None = None
        self._jpeg: tuple[int, bytes] | None = None  # (frame count it was made from, bytes)
        self._lock = threading.Lock()
        self._waiting: dict[str, queue.Queue[Answer]] = {}
        self._seq = 0

    def start(self) -> None:
        self.start_serving(_handler_for(self))

    def close(self) -> None:
        self.stop_serving()

    # -- from the node's thread --

    def update(self, frame: Frame) -> None:
        """Keep the newest frame; it is JPEG-encoded only when a viewer asks (not per frame)."""
        with self._lock:
            self._frame = frame
            self.frames += 1

    def deliver(self, answer: Answer) -> None:
        with self._lock:
            waiting = self._waiting.get(answer.query_id)
        if waiting is not None:
            waiting.put(answer)

    # -- from request threads --

    def jpeg(self) -> bytes | None:
        with self._lock:
            frame, count, cached = self._frame, self.frames, self._jpeg
        if frame is None:
            return None
        if cached is not None and cached[0] == count:
            return cached[1]
        try:
            image = _displayable(frame, self.max_width)
        except FrameTornError:  # a shared-memory frame overwritten since it came: the last picture still stands
            return cached[1] if cached is not None else None
        data = jpeg_encode(image, "bgr", self.quality).tobytes()
        with self._lock:
            self._jpeg = (count, data)
        return data

    def ask(self, question: str) -> tuple[str, queue.Queue[Answer]]:
        qid = uuid.uuid4().hex[:12]
        answers: queue.Queue[Answer] = queue.Queue()
        with self._lock:
            self._waiting[qid] = answers
            self._seq += 1
            seq = self._seq
        self.outbox.put(Query(qid, seq, now_ns(), question))
        return qid, answers

    def forget(self, qid: str) -> None:
        with self._lock:
            self._waiting.pop(qid, None)


def _displayable(frame: Frame, max_width: int) -> np.ndarray:
    """BGR uint8 (JPEG's order) at most ``max_width`` wide (every nth pixel: cheap and good enough to watch)."""
    image = to_bgr(frame)
    step = max(1, -(-image.shape[1] // max_width))
    return np.ascontiguousarray(image[::step, ::step])


def _handler_for(server: QAServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        log_name = "web"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlparse(self.path)
            if url.path == "/":
                self._reply(200, "text/html; charset=utf-8", _PAGE.read_bytes())
            elif url.path == "/frame.jpg":
                jpeg = server.jpeg()
                if jpeg is None:
                    self._reply(503, "text/plain", b"no frame yet\n")
                else:
                    self._reply(200, "image/jpeg", jpeg)
            elif url.path == "/status":
                body = json.dumps({"frames": server.frames, "ready": server.ready}).encode()
                self._reply(200, "application/json", body)
            elif url.path == "/ask":
                question = (parse_qs(url.query).get("q") or [""])[0].strip()
                if not question or len(question) > MAX_QUESTION_CHARS:
                    self._reply(400, "text/plain", f"expected ?q=QUESTION (1-{MAX_QUESTION_CHARS} chars)\n".encode())
                else:
                    self._answer(question)
            else:
                self._reply(404, "text/plain", b"not found: try /, /frame.jpg, /ask?q=..., /status\n")

        def _event(self, data: dict[str, object], event: str = "") -> None:
            head = f"event: {event}\n" if event else ""
            self.wfile.write(f"{head}data: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        def _answer(self, question: str) -> None:
            """Stream one answer as SSE; the connection closes after ``done`` or ``error``."""
            t0 = time.monotonic()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            qid, answers = server.ask(question)
            first: float | None = None
            try:
                while True:
                    try:
                        answer = answers.get(timeout=max(0.1, server.answer_timeout_s - (time.monotonic() - t0)))
                    except queue.Empty:
                        self._event({"error": f"no answer within {server.answer_timeout_s:.0f} s: is the model "
                                              "running? (agentrt serve prints its state)"}, "error")
                        return
                    if answer.error:
                        self._event({"error": answer.error}, "error")
                        return
                    if answer.text:
                        first = first if first is not None else time.monotonic()
                        self._event({"text": answer.text, "seq": answer.seq})
                    if answer.done:
                        done = time.monotonic()
                        ttft = ((first if first is not None else done) - t0) * 1e3
                        self._event({"ttft_ms": round(ttft, 1), "total_ms": round((done - t0) * 1e3, 1)}, "done")
                        return
            except (BrokenPipeError, ConnectionResetError):
                log.debug("the asker of %s left before the answer ended", qid)
            finally:
                server.forget(qid)

    return Handler
