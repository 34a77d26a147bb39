"""A local HTTP server on a daemon thread: the one piece under `agentrt view`'s MJPEG page and `agentrt serve`.

Subclasses set ``host`` / ``port`` (0 = any free port; ``port`` holds the bound
one after ``start_serving``) and pass their request handler class.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["BackgroundHTTPServer", "QuietHandler"]

log = logging.getLogger(__name__)


class QuietHandler(BaseHTTPRequestHandler):
    """Request lines go to the debug log (not stderr); ``_reply`` sends one whole, uncached response."""

    log_name = "http"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        log.debug(f"{self.log_name} %s: " + format, self.address_string(), *args)

    def _reply(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class BackgroundHTTPServer:
    def __init__(self, host: str, port: int, thread_name: str) -> None:
        self.host, self.port = host, port
        self._thread_name = thread_name
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start_serving(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True  # a viewer that never disconnects must not hold up exit
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=self._thread_name, daemon=True)
        self._thread.start()

    def stop_serving(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
