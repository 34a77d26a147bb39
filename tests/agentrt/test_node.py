from __future__ import annotations

from dataclasses import dataclass

import pytest

from agentrt.errors import ConfigError
from agentrt.messages import ActionChunk, Frame, Query
from agentrt.node import Input, Node, Tick, check_node, latest, lossless
from agentrt.nodes.echo import EchoNode
from agentrt.nodes.sink import ActionSinkNode
from agentrt.nodes.synthetic import SyntheticFrameNode
from agentrt.testing import MockNode, fake_frame, frames_of


def test_source_ticks_on_virtual_clock() -> None:
    harness = MockNode(SyntheticFrameNode, rate_hz=100, params={"width": 8, "height": 4})
    sent = harness.run(ticks=5)
    frames = frames_of(sent, "frames")
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    assert all(isinstance(f, Frame) and f.image.shape == (4, 8, 3) for f in frames)
    assert harness.io.states == ["ready"]
    assert harness.node.stats.over_budget == 0
    assert [h[0] for h in frames[0].hops] == ["syntheticframenode"]


def test_policy_maps_frames_to_chunks_and_carries_hops() -> None:
    harness = MockNode(EchoNode, params={"dims": 3, "steps": 2}, name="policy")
    frame = fake_frame(0)
    frame.hops.append(("camera", 5))
    sent = harness.run(inputs=[("frames", frame), ("frames", fake_frame(1))])
    chunks = frames_of(sent, "actions")
    assert len(chunks) == 2
    assert isinstance(chunks[0], ActionChunk) and chunks[0].actions.shape == (2, 3)
    assert chunks[0].frame_seq == 0 and [h[0] for h in chunks[0].hops] == ["camera", "policy"]


def test_sink_records_traces_and_holds_until_armed() -> None:
    harness = MockNode(ActionSinkNode, name="robot", armed=False)
    chunk = ActionChunk("arm", 0, 0, 100, "ee_delta", __import__("numpy").zeros((1, 2), "float32"), 10.0,
                        hops=[("cam", 150), ("policy", 200)])
    harness.run(inputs=[("actions", chunk)])
    assert harness.node.chunks == 0 and harness.node.stats.held_unarmed == 1
    harness.io.is_armed = True
    harness.run(inputs=[("actions", chunk)])
    assert harness.node.chunks == 1
    trace = harness.node.stats.traces[-1]
    assert [name for name, _ in trace] == ["capture", "cam", "policy", "robot"]


def test_bad_config_and_undeclared_output() -> None:
    with pytest.raises(ConfigError, match="dims"):
        MockNode(EchoNode, params={"dims": 0})
    with pytest.raises(ConfigError, match="rejected params"):
        MockNode(EchoNode, params={"nope": 1})

    class Bad(Node):
        inputs = {"x": latest()}

        def run(self) -> None:
            for event in self.events():
                if isinstance(event, Input):
                    self.send("y", event.message)

    with pytest.raises(ConfigError, match="declares only"):
        MockNode(Bad).run(inputs=[("x", fake_frame(0))])


def test_custom_event_loop_sees_ticks_and_inputs() -> None:
    @dataclass
    class Cfg:
        n: int = 1

    class Both(Node):
        inputs = {"x": latest()}
        Config = Cfg
        rate_hz = 10.0

        def setup(self) -> None:
            self.seen: list[str] = []

        def run(self) -> None:
            for event in self:
                self.seen.append(type(event).__name__)
                assert not isinstance(event, Tick) or event.late_ns >= 0

    check_node(Both)
    harness = MockNode(Both)
    harness.run(inputs=[("x", fake_frame(0))], duration_s=0.35)
    assert harness.node.seen == ["Input", "Tick", "Tick", "Tick", "Stop"]


def test_check_node_rejects_non_nodes() -> None:
    with pytest.raises(ConfigError, match="not a node"):
        check_node(dict)



def test_events_with_idle_ns_give_the_node_its_own_turn_between_inputs() -> None:
    """A node that waits on something of its own (SourceNode's frame source) runs on `events()` too."""

    class Asker(Node):
        inputs = {"questions": lossless("Query")}

        def run(self) -> None:
            self.seen: list[str] = []
            for event in self.events(idle_ns=0):
                self.seen.append(type(event).__name__)
                if self.seen == ["Idle", "Idle"]:
                    harness.io.pending.append(("questions", Query("q", 0, 0, "why?")))

    harness = MockNode(Asker)
    harness.io.end_ns = harness.io.now_ns + 3  # virtual time: each empty poll moves it 1 ns, then Stop
    harness.setup()
    harness.node.run()
    assert harness.node.seen == ["Idle", "Idle", "Input", "Idle", "Stop"]
    plain = MockNode(Asker)
    plain.node.events = lambda **_: Node.events(plain.node)  # type: ignore[method-assign]
    plain.run(inputs=[("questions", Query("q", 0, 0, "why?"))])
    assert plain.node.seen == ["Input", "Stop"]  # without idle_ns: no Idle events


def test_in_process_inputs_drop_messages_of_the_wrong_kind_as_the_node_host_does() -> None:
    """The port's kind is what a node gets, in tests as in processes: nodes need no isinstance re-check."""
    harness = MockNode(EchoNode, params={"dims": 3, "steps": 2}, name="policy")
    sent = harness.run(inputs=[("frames", Query("q", 0, 0, "not a frame")), ("frames", fake_frame(0))])
    assert [type(m).__name__ for _, m in sent] == ["ActionChunk"]
    assert harness.io.wrong_kind == {"frames": 1}
