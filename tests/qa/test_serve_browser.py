"""End to end in headless Chromium: `agentrt serve` (synthetic stream, a tiny model) and
`agentrt run launch/sim_qa.yaml` (the agent at work in PyBullet, the nano QA model watching).

Chromium is driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages separated by NUL bytes on fds 3
and 4), so no websocket client or Playwright is needed. The test types a
question, clicks Ask, waits for the streamed answer and its latency line, and
saves a screenshot in its tmp dir (the sim_qa one also to docs/img/sim_qa.png
when AGENTRT_UPDATE_DOCS_IMG=1). Skipped where /usr/bin/chromium is missing.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("AGENTRT_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
QUESTION = "what is the robot holding?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM to the process group, then SIGKILL what is left; always reaps."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


class DevTools:
    """Chromium with the DevTools protocol on a pipe; one page session."""

    def __init__(self, user_data_dir: Path, window: tuple[int, int] = (1100, 640)) -> None:
        cmd_r, self._cmd_w = os.pipe()  # we write commands, Chromium reads fd 3
        self._res_r, res_w = os.pipe()  # Chromium writes fd 4, we read

        def place_fds() -> None:  # runs in the child: put the pipe ends where Chromium expects them
            a, b = os.dup(cmd_r), os.dup(res_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--remote-debugging-pipe", f"--user-data-dir={user_data_dir}",
                 f"--window-size={window[0]},{window[1]}", "about:blank"]
        self.proc = subprocess.Popen([CHROMIUM, *flags], preexec_fn=place_fds, pass_fds=(3, 4),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(cmd_r)
        os.close(res_w)
        self._id = 0
        self._buffer = b""
        self.session = ""

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True,
             timeout_s: float = 30.0) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            for reply in self._read(deadline):
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return dict(reply.get("result", {}))

    def _read(self, deadline: float) -> list[dict[str, Any]]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("Chromium did not answer in time")
        ready, _, _ = select.select([self._res_r], [], [], remaining)
        if not ready:
            raise TimeoutError("Chromium did not answer in time")
        data = os.read(self._res_r, 1 << 20)
        if not data:
            raise RuntimeError("Chromium closed the DevTools pipe")
        self._buffer += data
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in messages if m]

    def open_page(self, url: str) -> None:
        targets = self.call("Target.getTargets", session=False)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Page.navigate", {"url": url})

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"page: {expression} stayed false for {timeout_s:.0f} s")

    def click(self, element_id: str) -> None:
        """A real mouse click at the element's centre."""
        box = self.js(f"(() => {{ const r = document.getElementById('{element_id}').getBoundingClientRect();"
                      f" return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1})

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("Browser.close", session=False, timeout_s=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        _stop_group(self.proc, grace_s=5)
        for fd in (self._cmd_w, self._res_r):
            try:
                os.close(fd)
            except OSError:
                pass


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"agentrt serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
                status = json.loads(r.read())
            if status["ready"] and status["frames"] > 0:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"agentrt serve not ready in {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def _ask_in_browser(port: int, question: str, tmp_path: Path, shot_name: str,
                    window: tuple[int, int] = (1100, 640), docs_image: bool = False) -> tuple[str, str]:
    """Open the page, type ``question``, click Ask, wait for the streamed answer; a screenshot to
    tmp_path/shot_name (and, with ``docs_image``, to docs/img/ when AGENTRT_UPDATE_DOCS_IMG=1).
    -> (answer, latency line)."""
    browser = DevTools(tmp_path / "chromium-profile", window)
    try:
        browser.open_page(f"http://127.0.0.1:{port}/")
        browser.wait_for("document.readyState === 'complete' && document.getElementById('video').naturalWidth > 0",
                         timeout_s=30)
        browser.wait_for("document.getElementById('status').textContent.includes('model ready')", timeout_s=30)
        browser.js("document.getElementById('question').focus()")
        browser.call("Input.insertText", {"text": question})
        browser.click("ask")
        browser.wait_for("document.getElementById('answer').dataset.done === '1'", timeout_s=60)
        answer = browser.js("document.getElementById('answer').textContent")
        latency = browser.js("document.getElementById('latency').textContent")
        assert browser.js("document.getElementById('answer').className") != "error", answer
        assert answer and "first token" in latency and "total" in latency, (answer, latency)
        time.sleep(0.3)  # a fresh video frame under the answer
        shot = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"})["data"])
        (tmp_path / shot_name).write_bytes(shot)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n"
        if docs_image and os.environ.get("AGENTRT_UPDATE_DOCS_IMG") == "1":
            (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / shot_name, REPO / "docs" / "img" / shot_name)
        return str(answer), str(latency)
    finally:
        browser.close()


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "agentrt.cli.__main__", *args], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


needs_chromium = pytest.mark.skipif(not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
                                    reason=f"{CHROMIUM} missing: install Debian's chromium (apt-get install -y chromium)")


@needs_chromium
def test_serve_answers_a_question_typed_in_the_browser(tiny_smolvlm: Path, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    serve = _start(["serve", "--model", f"hf:{tiny_smolvlm}", "--source", "synthetic:320x240@10", "--port", str(port),
                    "--max-new-tokens", "12", "--duration", "240"], log)
    try:
        _wait_ready(port, serve, log, timeout_s=180)
        _ask_in_browser(port, QUESTION, tmp_path, "serve.png")
    finally:
        _stop_group(serve, grace_s=15)
    assert serve.returncode in (0, -signal.SIGTERM, -signal.SIGKILL), log.read_text()[-2000:]


@needs_chromium
def test_sim_qa_answers_about_the_running_simulation_in_the_browser(tmp_path: Path) -> None:
    """launch/sim_qa.yaml as a user runs it: the nano VLA drives the reach task in PyBullet, the
    nano QA model watches the scene camera, the question is typed into the page."""
    port = _free_port()
    log = tmp_path / "sim_qa.log"
    run = _start(["run", str(REPO / "launch" / "sim_qa.yaml"), "--set", f"web.port={port}", "--duration", "240",
                  "--no-status", "--report-dir", str(tmp_path / "runs")], log)
    try:
        _wait_ready(port, run, log, timeout_s=180)
        time.sleep(2.0)  # a few frames of the episode in the model's memory
        answer, _ = _ask_in_browser(port, "how many objects are there?", tmp_path, "sim_qa.png", window=(1100, 700),
                                    docs_image=True)
    finally:
        _stop_group(run, grace_s=15)
    assert answer in ("two", "three", "four"), answer  # a count word (accuracy: agentrt eval qa --sim-episodes)
    assert run.returncode in (0, -signal.SIGTERM, -signal.SIGKILL), log.read_text()[-2000:]
