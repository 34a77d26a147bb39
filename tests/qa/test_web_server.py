"""QAServer without a browser: routes, SSE pieces, errors; a thread stands in for the node."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from agentrt.messages import Answer
from agentrt.testing import fake_frame
from agentrt.web.server import QAServer


@pytest.fixture
def server() -> Iterator[QAServer]:
    qa = QAServer(port=0, answer_timeout_s=5)
    qa.start()
    yield qa
    qa.close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _answer_with(server: QAServer, pieces: list[str], error: str = "") -> threading.Thread:
    def node() -> None:
        query = server.outbox.get(timeout=5)
        for i, text in enumerate(pieces):
            server.deliver(Answer(query.id, i, 0, text))
        server.deliver(Answer(query.id, len(pieces), 0, "", done=True, error=error))

    thread = threading.Thread(target=node, daemon=True)
    thread.start()
    return thread


def _events(body: bytes) -> list[tuple[str, dict[str, object]]]:
    out = []
    for block in body.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines.get("event", ""), json.loads(lines["data"])))
    return out


def test_page_frame_and_status(server: QAServer) -> None:
    assert _get(server.url)[0] == 200
    assert _get(server.url + "frame.jpg")[0] == 503  # nothing yet
    server.update(fake_frame(0, height=120, width=160))
    code, jpeg = _get(server.url + "frame.jpg")
    assert code == 200 and jpeg[:2] == b"\xff\xd8"
    assert json.loads(_get(server.url + "status")[1]) == {"frames": 1, "ready": False}
    assert _get(server.url + "nowhere")[0] == 404
    assert _get(server.url + "ask?q=")[0] == 400


def test_answer_streams_as_events_then_done(server: QAServer) -> None:
    node = _answer_with(server, ["a red", " cube"])
    code, body = _get(server.url + "ask?q=what+is+it")
    node.join()
    events = _events(body)
    assert code == 200
    assert [data["text"] for kind, data in events if kind == ""] == ["a red", " cube"]
    assert events[-1][0] == "done" and {"ttft_ms", "total_ms"} <= set(events[-1][1])


def test_a_failed_answer_is_an_error_event(server: QAServer) -> None:
    node = _answer_with(server, [], error="ModelError: boom")
    _, body = _get(server.url + "ask?q=what")
    node.join()
    assert _events(body) == [("error", {"error": "ModelError: boom"})]
