"""Fixtures for streams tests: clips written here with PyAV, real photos, a local HTTP server, leak checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streams.synthetic import SyntheticConfig, SyntheticSource

REAL_VIDEOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "videos"

W, H = 160, 128  # wide enough for the synthetic seq stamp (16 blocks of 8 px)


def stamped_images(count: int, width: int = W, height: int = H) -> list[np.ndarray]:
    """Synthetic frames whose top-left blocks encode their index (see streams.synthetic.read_stamp)."""
    source = SyntheticSource(SyntheticConfig(width=width, height=height, fps=0))
    source._open()
    return [source._render(i, i) for i in range(count)]


def write_clip(path: Path, count: int = 30, fps: int = 30, width: int = W, height: int = H,
               container_format: str | None = None) -> Path:
    import av

    images = stamped_images(count, width, height)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A 30-frame 160x128 H.264 MP4 at 30 fps whose frames carry their index as a stamp."""
    return write_clip(tmp_path / "clip.mp4")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of real photos from scikit-image (as PNG and JPEG), in a known name order."""
    cv2 = pytest.importorskip("cv2")
    data = pytest.importorskip("skimage.data")
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"]):
        image = getattr(data, name)()
        image = cv2.resize(image, (image.shape[1] // 4, image.shape[0] // 4))
        suffix = ".png" if i % 2 == 0 else ".jpg"
        cv2.imwrite(str(folder / f"{i:02d}_{name}{suffix}"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not an image")
    return folder


class _QuietHandler(SimpleHTTPRequestHandler):
    truncate_first: dict[str, int] = {}  # path -> bytes to send before cutting the first request
    stall_first_s: float = 0.0  # > 0: after those bytes, hang this long instead of closing (a stall)
    served: dict[str, int] = {}
    release = threading.Event()  # set at teardown: a stalled handler stops waiting

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        count = self.served.get(self.path, 0)
        self.served[self.path] = count + 1
        cut = self.truncate_first.get(self.path)
        if cut is not None and count == 0:
            data = Path(self.translate_path(self.path)).read_bytes()[:cut]
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            if self.stall_first_s:
                self.release.wait(self.stall_first_s)
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, type[_QuietHandler]]]:
    """Serves tmp_path over http://127.0.0.1:PORT; the handler class can cut a first request short."""

    class Handler(_QuietHandler):
        truncate_first: dict[str, int] = {}
        served: dict[str, int] = {}
        release = threading.Event()

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Handler
    finally:
        Handler.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def no_leaked_grab_threads() -> Iterator[None]:
    """Every test must disconnect its sources: no grab thread may outlive it."""
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [t.name for t in threading.enumerate() if t.name.startswith(("grab-", "mjpeg-"))]
        if not left:
            return
        time.sleep(0.05)
    pytest.fail(f"threads left running after the test: {left}")
