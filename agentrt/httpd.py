"""A local HTTP server on a daemon thread: the one piece under `agentrt view`'s MJPEG page and `agentrt serve`.

Subclasses set ``host`` / ``port`` (0 = any free port; ``port`` holds the bound
one after ``start_serving``) and pass their request handler class.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["BackgroundHTTPServer"]


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
