"""``repeat`` in launch files: N copies of a node, wired index to index, with per-copy params."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.errors import LaunchError
from agentrt.launch import load_launch

FLEET = """
nodes:
  camera:
    class: agentrt.nodes.synthetic:SyntheticFrameNode
    repeat: 3
    repeat_step: {{width: 10}}
    params: {{width: 32, stream: "cam{{i}}"}}
  policy:
    class: agentrt.nodes.echo:EchoNode
    repeat: {policy_repeat}
    inputs: {{frames: camera.frames}}
    params: {{robot: "arm{{i}}"}}
    start_after: [camera]
  sink:
    class: agentrt.nodes.echo:EchoNode
    start_after: [camera]
"""


def _write(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.format(**{"policy_repeat": "camera", **fields}))
    return path


def test_copies_are_wired_index_to_index_with_their_own_params(tmp_path: Path) -> None:
    spec = load_launch(_write(tmp_path))
    assert sorted(spec.nodes) == ["camera0", "camera1", "camera2", "policy0", "policy1", "policy2", "sink"]
    assert [spec.nodes[f"camera{i}"].config.width for i in range(3)] == [32, 42, 52]
    assert spec.nodes["camera2"].config.stream == "cam2"
    assert spec.nodes["policy2"].inputs == {"frames": ("camera2", "frames")}
    assert spec.nodes["policy1"].config.robot == "arm1"
    assert spec.nodes["policy1"].start_after == ("camera1",)
    assert spec.nodes["sink"].start_after == ("camera0", "camera1", "camera2")  # not repeated: waits for every copy
    assert spec.nodes["policy0"].group == "policy" and spec.nodes["sink"].group == ""


def test_set_changes_the_count_and_the_followers_follow(tmp_path: Path) -> None:
    spec = load_launch(_write(tmp_path), ["camera.repeat=5"])
    assert sum(name.startswith("policy") for name in spec.nodes) == 5


@pytest.mark.parametrize(("policy_repeat", "sets", "message"), [
    (2, [], "reads repeated node 'camera'"),  # 2 copies reading 3: not index to index
    ("sink", [], "must name a node repeated by a count"),
    ("camera", ["camera.repeat=0"], "repeat must be a count"),
    ("camera", ["camera.repeat_step={stream: 2}"], "repeat_step: stream must be a number"),
    ("camera", ["sink.repeat_step={dims: 2}"], "repeat_step without repeat"),
])
def test_mistakes_are_one_line_naming_the_node(tmp_path: Path, policy_repeat: object, sets: list[str],
                                                 message: str) -> None:
    with pytest.raises(LaunchError, match=message):
        load_launch(_write(tmp_path, policy_repeat=policy_repeat), sets)
