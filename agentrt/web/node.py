"""`WebNode`: the page of `agentrt serve` as a node: frames and answers in, questions out.

    nodes:
      web:
        class: agentrt.web.node:WebNode
        inputs: {frames: camera.frames, answers: qa.answers}
        params: {port: 8765}                 # http://127.0.0.1:8765/

The HTTP server runs on its own thread (`QAServer`); this node's thread is the
only one that touches its sockets: it ticks at ``rate_hz`` to send the
questions the page queued, and hands frames and answer pieces to the server.
It is armed once the answering node is ready, and the page then says so.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from agentrt.errors import ConfigError
from agentrt.messages import Answer, Frame
from agentrt.node import Armed, Input, Node, Tick, latest, lossless
from agentrt.web.server import QAServer

__all__ = ["WebNodeConfig", "WebNode"]


@dataclass
class WebNodeConfig:
    port: int = 8765  # 0 = any free port (the URL is logged)
    host: str = "127.0.0.1"  # the page is for this machine; bind 0.0.0.0 only on a trusted network
    quality: int = 80  # JPEG quality of the live view
    max_width: int = 640  # the live view is downscaled to at most this width
    answer_timeout_s: float = 120.0  # a question with no answer by then gets an error on the page
    port_file: str = ""  # write the bound port here once listening (scripts, tests)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"WebNodeConfig.port: expected 0..65535, got {self.port}")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"WebNodeConfig.quality: expected 1..100, got {self.quality}")
        if self.max_width < 16 or self.answer_timeout_s <= 0:
            raise ConfigError(f"WebNodeConfig: max_width >= 16 and answer_timeout_s > 0, got {self}")


class WebNode(Node):
    inputs = {"frames": latest("Frame"), "answers": lossless("Answer")}
    outputs = {"queries": lossless("Query")}
    Config = WebNodeConfig
    rate_hz = 50.0  # how often queued questions go out (a question waits at most 20 ms)
    arm_after = ("answers",)

    def setup(self) -> None:
        c = self.config
        self.server = QAServer(c.port, c.host, c.quality, c.max_width, c.answer_timeout_s)
        try:
            self.server.start()
        except OSError as exc:
            raise ConfigError(f"web page: cannot listen on {c.host}:{c.port} ({exc.strerror}); "
                              "pick another port with --port") from None
        if c.port_file:
            Path(c.port_file).write_text(str(self.server.port))
        self.server.ready = self.armed
        self.log.info("open %s in a browser", self.server.url)

    def run(self) -> None:
        for event in self.events():
            if isinstance(event, Armed):
                self.server.ready = True
            elif isinstance(event, Tick):
                self._send_questions()
            elif isinstance(event, Input):  # each input's port fixes its kind: the host drops any other
                if event.name == "frames":
                    self.server.update(cast(Frame, event.message))
                else:
                    self.server.deliver(cast(Answer, event.message))

    def _send_questions(self) -> None:
        while True:
            try:
                query = self.server.outbox.get_nowait()
            except queue.Empty:
                return
            self.send("queries", query)

    def teardown(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.close()
