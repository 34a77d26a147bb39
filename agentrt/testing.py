"""Test a node's logic in-process, without processes or sockets, on a virtual clock.

    from agentrt.testing import MockNode, fake_frame

    harness = MockNode(GainNode, params={"gain": 0.5})
    out = harness.run(inputs=[("frames", fake_frame(0)), ("frames", fake_frame(1))])
    assert [name for name, _ in out] == ["actions", "actions"]

    source = MockNode(SyntheticFrameNode, rate_hz=30)   # agentrt.nodes.synthetic: the shipped frame source
    frames = source.run(ticks=10)          # 10 ticks, instantly: the clock is virtual

``run`` calls ``setup()`` once, delivers the inputs in order, fires ticks as the
virtual clock advances, then delivers `Stop`; it returns what the node sent,
as (output name, message). ``close()`` runs ``teardown()``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentrt.errors import ConfigError
from agentrt.messages import Frame, Message
from agentrt.node import Node, check_node
from agentrt.pattern import synthetic_image
from agentrt.process import process_alive

__all__ = ["MockIO", "MockNode", "fake_frame", "frames_of", "child_pids", "process_alive"]

_START_NS = 1_000_000_000


def fake_frame(seq: int, *, height: int = 48, width: int = 64, channels: int = 3, stream: str = "fake",
               t_capture_ns: int | None = None) -> Frame:
    """A synthetic frame (a pattern that moves with ``seq``), captured at ``t_capture_ns``."""
    image = synthetic_image(seq, height, width, channels)
    return Frame(stream, seq, t_capture_ns if t_capture_ns is not None else _START_NS + seq, image)


class MockIO:
    """The in-process `NodeIO`: a queue of inputs, a list of sent messages, a virtual clock."""

    def __init__(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        self.now_ns = _START_NS
        self.pending: deque[tuple[str, Message]] = deque()
        self.sent: list[tuple[str, Message]] = []
        self.states: list[str] = []
        self.is_armed = True
        self.wrong_kind: dict[str, int] = {}  # input -> messages of another kind than its port declares
        self.end_ns: int | None = None
        self.end_ticks: int | None = None
        self.ticks = lambda: 0
        self._inputs = inputs
        self._outputs = outputs

    def clock_ns(self) -> int:
        return self.now_ns

    def poll(self, timeout_ns: int) -> list[tuple[str, Message]]:
        while self.pending:
            name, message = self.pending.popleft()
            port = self._inputs.get(name)
            if port is not None and port.message and type(message).__name__ != port.message:
                self.wrong_kind[name] = self.wrong_kind.get(name, 0) + 1  # dropped, as agentrt.nodehost does
                continue
            return [(name, message)]
        self.now_ns += max(1, timeout_ns)
        return []

    def send(self, output: str, message: Message) -> None:
        self.sent.append((output, message))

    def stop_reason(self) -> str:
        if self.pending:
            return ""
        if self.end_ticks is not None and self.ticks() < self.end_ticks:
            return ""
        if self.end_ns is not None and self.now_ns < self.end_ns:
            return ""
        return "end of test input"

    def beat(self) -> None:
        pass

    def armed(self) -> bool:
        return self.is_armed

    def report(self, state: str) -> None:
        self.states.append(state)


class MockNode:
    """Runs one node class in-process. Give ``config`` or ``params`` (validated like a launch file)."""

    def __init__(self, node_cls: type[Node], config: Any = None, *, params: dict[str, Any] | None = None,
                 name: str | None = None, rate_hz: float | None = None, armed: bool = True,
                 arm_after: tuple[str, ...] | None = None, trace: bool | None = None) -> None:
        check_node(node_cls)
        if config is None:
            try:
                config = node_cls.Config(**(params or {}))
            except TypeError as exc:
                raise ConfigError(f"{node_cls.__name__}.Config rejected params {params!r}: {exc}") from None
        self.io = MockIO(node_cls.inputs, node_cls.outputs)
        self.io.is_armed = armed
        self.node = node_cls(config, name=name or node_cls.__name__.lower(), io=self.io, rate_hz=rate_hz,
                             arm_after=arm_after, trace=trace)
        self.io.ticks = lambda: self.node.stats.ticks
        self._set_up = False

    @property
    def sent(self) -> list[tuple[str, Message]]:
        """Everything the node sent so far, as (output name, message)."""
        return self.io.sent

    def setup(self) -> None:
        if not self._set_up:
            self.node.setup()
            self.io.report("ready")
            self._set_up = True

    def run(self, inputs: Iterable[tuple[str, Message]] = (), *, ticks: int | None = None,
            duration_s: float | None = None) -> list[tuple[str, Message]]:
        """Deliver ``inputs`` (and ``ticks`` ticks, or ``duration_s`` of virtual time); return what was sent."""
        self.setup()
        for name, message in inputs:
            if name not in self.node.inputs:
                raise ConfigError(f"{type(self.node).__name__} has no input '{name}': it declares "
                                  f"{sorted(self.node.inputs)}")
            self.io.pending.append((name, message))
        if ticks is not None and self.node.rate_hz <= 0:
            raise ConfigError(f"{type(self.node).__name__} is not timed (rate_hz = 0): give inputs, not ticks")
        self.io.end_ticks = None if ticks is None else self.node.stats.ticks + ticks
        self.io.end_ns = None if duration_s is None else self.io.now_ns + int(duration_s * 1e9)
        first = len(self.io.sent)
        self.node.run()
        return self.io.sent[first:]

    def close(self) -> None:
        self.node.teardown()

    def __enter__(self) -> MockNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def frames_of(sent: Iterable[tuple[str, Message]], output: str) -> list[Any]:
    """The messages sent on ``output``."""
    return [m for name, m in sent if name == output]


# Python's own helpers, started by the first spawn-context Event or Queue and alive until the interpreter
# exits: not an orphan of the run under test (an earlier test's multiprocessing starts them).
PYTHON_HELPERS = (b"multiprocessing.resource_tracker", b"multiprocessing.forkserver")


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux, from /proc), less Python's multiprocessing helpers: to check a
    run leaves no orphan."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and not is_python_helper(int(entry.name)):
            out.append(int(entry.name))
    return out


def is_python_helper(pid: int) -> bool:
    """``pid`` is multiprocessing's resource tracker or fork server (``PYTHON_HELPERS``)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(helper in cmdline for helper in PYTHON_HELPERS)
