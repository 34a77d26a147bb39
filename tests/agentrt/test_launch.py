from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentrt.cli.__main__ import main
from agentrt.errors import ConfigError, LaunchError
from agentrt.launch import check_launch, load_launch
from agentrt.testing import child_pids as children

FIXTURES = Path(__file__).parent / "launch_fixtures"
DEMO = Path(__file__).resolve().parents[2] / "launch" / "pipeline_demo.yaml"


@pytest.mark.parametrize(
    ("name", "line", "words"),
    [
        ("unknown_key.yaml", 5, "unknown key 'restrat'"),
        ("missing_node.yaml", 4, "no node 'camera'"),
        ("dangling_wire.yaml", 6, "has outputs frames"),
        ("wrong_type.yaml", 5, "parameter 'width' of SyntheticFrameNode must be int, got 'wide'"),
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
        "nodes:\n  cam:\n    class: agentrt.nodes.synthetic:SyntheticFrameNode\n"
        "  policy:\n    class: agentrt.nodes.echo:EchoNode\n    inputs: {frames: cam.frames}\n"
        "  a:\n    class: agentrt.nodes.sink:ActionSinkNode\n    inputs: {actions: policy.actions}\n"
        "  b:\n    class: agentrt.nodes.sink:ActionSinkNode\n    inputs: {actions: policy.actions}\n"
    )
    with pytest.raises(LaunchError, match="feeds exactly one lossless input"):
        load_launch(fan)
    remote = tmp_path / "remote.yaml"
    remote.write_text(
        "hosts:\n  robot: {address: 127.0.0.1}\n"
        "nodes:\n  cam:\n    class: agentrt.nodes.synthetic:SyntheticFrameNode\n    host: robot\n"
    )
    with pytest.raises(LaunchError, match="no 'keys:'"):
        load_launch(remote)


POLICY = {"class": "agentrt.nodes.echo:EchoNode", "inputs": "{frames: camera.frames}"}


def node_file(policy: dict[str, str]) -> str:
    lines = "".join(f"    {key}: {value}\n" for key, value in policy.items())
    return f"nodes:\n  camera:\n    class: agentrt.nodes.synthetic:SyntheticFrameNode\n  policy:\n{lines}"


# (node key, a value that is wrong for it): each must fail the same way in the file and by --set.
BAD_NODE_VALUES = [
    ("class", "builtins:dict"),
    ("class", "3"),
    ("rate_hz", "fast"),
    ("rate_hz", "-1"),
    ("restart", "sometimes"),
    ("max_restarts", "many"),
    ("max_restarts", "-2"),
    ("backoff_s", "[1]"),
    ("backoff_max_s", "-1"),
    ("host", "mars"),
    ("inputs", "camera.frames"),
    ("inputs", "{pictures: camera.frames}"),
    ("arm_after", "[pictures]"),
    ("arm_after", "frames"),
    ("trace", "maybe"),
    ("ends_run", "yes please"),
    ("ready_timeout_s", "soon"),
    ("heartbeat_timeout_s", "-3"),
]


@pytest.mark.parametrize(("key", "text"), BAD_NODE_VALUES)
def test_set_is_checked_like_the_same_key_in_the_file(tmp_path: Path, key: str, text: str) -> None:
    in_file = tmp_path / "in_file.yaml"
    in_file.write_text(node_file({**POLICY, key: text}))
    by_set = tmp_path / "by_set.yaml"
    by_set.write_text(node_file(POLICY))
    with pytest.raises(LaunchError) as file_error:
        load_launch(in_file)
    with pytest.raises(LaunchError) as set_error:  # never a KeyError or AttributeError
        load_launch(by_set, [f"policy.{key}={text}"])
    file_message, set_message = str(file_error.value), str(set_error.value)
    assert set_message.startswith(f"{by_set}:4: ") and "\n" not in set_message, set_message
    assert f"(from --set policy.{key})" in set_message
    what = file_message.split(": ", 1)[1]  # the file's problem, without its file:line
    assert what in set_message, (file_message, set_message)


def test_set_class_must_be_a_node_and_its_params_fit() -> None:
    with pytest.raises(LaunchError, match="is not a node"):
        load_launch(DEMO, ["camera.class=collections:OrderedDict"])
    spec = load_launch(DEMO, ["robot.class=agentrt.nodes.sink:ActionSinkNode"])
    assert spec.nodes["robot"].class_path == "agentrt.nodes.sink:ActionSinkNode"
    with pytest.raises(LaunchError, match="unknown parameter 'width'"):  # the file's params checked on the new class
        load_launch(DEMO, ["camera.class=agentrt.nodes.echo:EchoNode"])


def test_set_params_merges_with_the_file() -> None:
    spec = load_launch(DEMO, ["policy.params={dims: 3}"])
    assert spec.nodes["policy"].config.dims == 3 and spec.nodes["policy"].config.steps == 4


@pytest.mark.parametrize(
    ("launch", "override", "words"),
    [
        ("sim.yaml", "sim.robot=r2d2", "unknown robot 'r2d2'"),
        ("sim.yaml", "sim.task=juggle", "expected one of reach, push, pick_place, got 'juggle'"),
        ("sim.yaml", "sim.seed=-1", "seed: expected an integer >= 0"),
        ("stream_record.yaml", "camera.source={NOPE}/missing.mp4", "no such file"),
        ("stream_record.yaml", "camera.source=folder:{NOPE}/nothing", "no such folder"),
        ("stream_record.yaml", "camera.class=builtins:dict", "is not a node"),
        ("stream_record.yaml", "recorder.restart=sometimes", "restart must be one of"),
    ],
)
def test_check_catches_what_the_docs_say(tmp_path: Path, capsys: pytest.CaptureFixture[str], launch: str,
                                         override: str, words: str) -> None:
    path = DEMO.parent / launch
    before = set(children(os.getpid()))
    code = main(["run", str(path), "--check", "--set", override.replace("{NOPE}", str(tmp_path))])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2, captured.out
    assert len(err) == 1 and words in err[0] and f"{path}:" in err[0], err
    assert set(children(os.getpid())) == before


def test_check_looks_at_files_only_for_nodes_on_this_host(tmp_path: Path) -> None:
    path = tmp_path / "remote.yaml"
    path.write_text(f"""hosts:
  robot: {{address: 127.0.0.1}}
keys: keys/
nodes:
  camera:
    class: streams.node:SourceNode
    params: {{source: {tmp_path}/on_the_robot.mp4}}
    host: robot
""")
    spec = load_launch(path)
    check_launch(spec)  # the file is on the robot's computer, not here
    with pytest.raises(LaunchError, match="no such file"):
        check_launch(spec, "robot")


def test_every_shipped_launch_file_loads() -> None:
    from agentrt.resources import launch_dir, shipped_launch_files

    assert launch_dir() == DEMO.parent and "sim.yaml" in shipped_launch_files()
    for name in shipped_launch_files():
        assert load_launch(launch_dir() / name).nodes


SIM = DEMO.parent / "sim.yaml"


@pytest.mark.parametrize("task", ["reach", "push", "pick_place"])
def test_one_sim_launch_file_runs_every_task(task: str) -> None:
    sim = load_launch(SIM, [f"sim.task={task}"]).nodes["sim"].config
    assert sim.task == task
    assert sim.video_path == f"runs/sim_{task}.mp4" and sim.results_path == f"runs/sim_{task}.jsonl"


def test_the_policy_takes_clock_and_control_hz_from_the_sim() -> None:
    spec = load_launch(SIM, ["sim.clock=lockstep", "sim.control_hz=10", "sim.frame_hz=5"])
    policy = spec.nodes["policy"]
    assert (policy.config.clock, policy.config.control_hz) == ("lockstep", 10)
    assert (policy.params["clock"], policy.params["control_hz"]) == ("lockstep", 10)  # what its process is given
    spec = load_launch(SIM, ["sim.clock=lockstep", "policy.clock=lockstep"])  # given twice, agreeing: fine
    assert spec.nodes["policy"].config.clock == "lockstep"


@pytest.mark.parametrize(("override", "words"), [
    ("policy.clock=lockstep", "node 'policy' has clock='lockstep' but 'sim', which feeds its 'state' input, "
                              "has clock='realtime'"),
    ("policy.control_hz=30", "node 'policy' has control_hz=30.0 but 'sim', which feeds its 'state' input, "
                             "has control_hz=20"),
])
def test_a_policy_that_disagrees_with_the_sim_is_one_line(capsys: pytest.CaptureFixture[str], override: str,
                                                          words: str) -> None:
    with pytest.raises(LaunchError, match="they must agree"):
        load_launch(SIM, [override])
    code = main(["run", str(SIM), "--check", "--set", override])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0] and f"{SIM}:" in err[0], err


def test_a_launch_file_that_repeats_the_clock_differently_fails(tmp_path: Path) -> None:
    text = SIM.read_text().replace("params: {decoding: consistency}", "params: {clock: lockstep, control_hz: 20}")
    assert "clock: lockstep" in text
    (tmp_path / "sim.yaml").write_text(text)
    with pytest.raises(LaunchError, match="has clock='lockstep' but 'sim'.*clock='realtime'"):
        load_launch(tmp_path / "sim.yaml")
