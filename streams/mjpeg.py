"""An MJPEG page on localhost: look at a stream from any browser, no display needed.

    server = MJPEGServer(port=8765)          # 0 = any free port
    server.start()
    print(server.url)                        # http://127.0.0.1:8765/
    server.update(frame)                     # call for every new frame
    server.close()

``/`` is a small page, ``/stream.mjpg`` the live ``multipart/x-mixed-replace``
stream, ``/frame.jpg`` the newest frame as one JPEG. Frames are encoded once,
whatever the number of viewers; a viewer always gets the newest frame, never a
queue. It binds 127.0.0.1 unless told otherwise: the stream is not meant to
leave the machine.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler

from agentrt.codecs import jpeg_encode
from agentrt.errors import FrameTornError
from agentrt.httpd import BackgroundHTTPServer, QuietHandler
from agentrt.messages import Frame
from agentrt.pixels import to_bgr

__all__ = ["MJPEGServer"]

log = logging.getLogger(__name__)

_BOUNDARY = "agentrtframe"
_PAGE = """<!doctype html><html><head><title>agentrt view: {title}</title>
<style>body{{background:#111;color:#ccc;font:14px sans-serif;margin:1em}}img{{max-width:100%}}</style></head>
<body><div>{title}</div><img src="/stream.mjpg" alt="live stream"></body></html>
"""


class MJPEGServer(BackgroundHTTPServer):
    """Serves the newest frame as MJPEG over HTTP from a background thread."""

    def __init__(self, port: int = 8765, host: str = "127.0.0.1", title: str = "stream", quality: int = 80) -> None:
        super().__init__(host, port, "mjpeg-server")
        self.title = title
        self.quality = quality
        self.frames = 0
        self._jpeg: bytes | None = None
        self._cond = threading.Condition()
        self._closed = False

    def start(self) -> None:
        self.start_serving(_handler_for(self))
        log.info("MJPEG view of %s on %s", self.title, self.url)

    def update(self, frame: Frame) -> None:
        """Encode a frame and hand it to every viewer."""
        try:
            image = to_bgr(frame)  # any pixel_format; JPEG's own order
        except FrameTornError:  # a shared-memory frame overwritten before it was read: viewers keep the last one
            return
        data = jpeg_encode(image, "bgr", self.quality).tobytes()
        with self._cond:
            self._jpeg = data
            self.frames += 1
            self._cond.notify_all()

    def next_jpeg(self, after: int, timeout_s: float = 1.0) -> tuple[int, bytes | None]:
        """Wait for a frame newer than number ``after``: (its number, JPEG bytes), or (after, None)."""
        with self._cond:
            self._cond.wait_for(lambda: self.frames > after or self._closed, timeout=timeout_s)
            if self._closed or self.frames <= after:
                return after, None
            return self.frames, self._jpeg

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.stop_serving()

    def __enter__(self) -> MJPEGServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler_for(server: MJPEGServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        log_name = "mjpeg"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?")[0]
            if path == "/":
                body = _PAGE.format(title=server.title).encode()
                self._reply(200, "text/html; charset=utf-8", body)
            elif path == "/frame.jpg":
                _, jpeg = server.next_jpeg(0, timeout_s=2.0)
                if jpeg is None:
                    self._reply(503, "text/plain", b"no frame yet\n")
                else:
                    self._reply(200, "image/jpeg", jpeg)
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._reply(404, "text/plain", b"not found: try / or /stream.mjpg\n")

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            number = 0
            try:
                while not server.closed:
                    number, jpeg = server.next_jpeg(number)
                    if jpeg is None:
                        continue
                    head = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpeg + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the viewer went away

    return Handler
