from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentrt.cli.__main__ import main
from agentrt.errors import ConfigError, LaunchError
from agentrt.launch import load_launch
from agentrt.testing import child_pids as children

FIXTURES = Path(__file__).parent / "launch_fixtures"
DEMO = Path(__file__).resolve().parents[2] / "launch" / "pipeline_demo.yaml"


@pytest.mark.parametrize(
    ("name", "line", "words"),
    [
        ("unknown_key.yaml", 5, "unknown key 'restrat'"),
        ("missing_node.yaml", 4, "no node 'camera'"),
        ("dangling_wire.yaml", 6, "has outputs frames"),
        ("wrong_type.yaml", 5, "parameter 'width' of SyntheticSource must be int, got 'wide'"),
        ("unknown_param.yaml", 4, "unknown parameter 'colour'"),
        ("bad_class.yaml", 3, "has no class 'NoSuchSource'"),
        ("wrong_node_key_type.yaml", 4, "'max_restarts' of node 'camera' must be int"),
        ("bad_yaml.yaml", 4, "not valid YAML"),
        ("kind_mismatch.yaml", 6, "takes ActionChunk, but 'camera.frames' sends Frame"),
    ],
)
def test_bad_launch_file_names_file_and_line(name: str, line: int, words: str) -> None:
    with pytest.raises(LaunchError) as info:
        load_launch(FIXTURES / name)
    message = str(info.value)
    assert message.startswith(f"{FIXTURES / name}:{line}: "), message
    assert words in message
    assert "\n" not in message


def test_bad_launch_file_starts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    before = set(children(os.getpid()))
    code = main(["run", str(FIXTURES / "missing_node.yaml"), "--duration", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "missing_node.yaml:4:" in err[0]
    assert set(children(os.getpid())) == before


def test_demo_validates_and_overrides_coerce() -> None:
    spec = load_launch(DEMO, ["camera.rate_hz=50", "policy.work_ms=2", "camera.stream=cam0"])
    assert spec.nodes["camera"].rate_hz == 50.0
    assert spec.nodes["policy"].config.work_ms == 2.0 and isinstance(spec.nodes["policy"].config.work_ms, float)
    assert spec.nodes["camera"].config.stream == "cam0"
    assert spec.nodes["robot"].arm_after == ("actions",)
    assert spec.consumers("camera", "frames") == [("policy", "frames")]


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("policy.dims=abc", "must be int"),
        ("policy.dims=0", "dims and steps must be >= 1"),
        ("nobody.x=1", "node 'nobody'"),
        ("policy", "node.param=value"),
    ],
)
def test_bad_overrides(override: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_launch(DEMO, [override])


def test_check_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(DEMO), "--check"]) == 0
    assert "ok (3 nodes" in capsys.readouterr().out


def test_lossless_fan_out_and_hosts_without_keys(tmp_path: Path) -> None:
    fan = tmp_path / "fan.yaml"
    fan.write_text(
        "nodes:\n  cam:\n    class: agentrt.nodes.synthetic:SyntheticSource\n"
        "  policy:\n    class: agentrt.nodes.echo:EchoPolicy\n    inputs: {frames: cam.frames}\n"
        "  a:\n    class: agentrt.nodes.sink:ActionSink\n    inputs: {actions: policy.actions}\n"
        "  b:\n    class: agentrt.nodes.sink:ActionSink\n    inputs: {actions: policy.actions}\n"
    )
    with pytest.raises(LaunchError, match="feeds exactly one input"):
        load_launch(fan)
    remote = tmp_path / "remote.yaml"
    remote.write_text(
        "hosts:\n  robot: {address: 127.0.0.1}\n"
        "nodes:\n  cam:\n    class: agentrt.nodes.synthetic:SyntheticSource\n    host: robot\n"
    )
    with pytest.raises(LaunchError, match="no 'keys:'"):
        load_launch(remote)
