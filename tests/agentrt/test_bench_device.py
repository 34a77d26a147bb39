"""--device / --dtype on the commands, the device record in every bench JSON, `agentrt bench device`, and the
engine, the policies' inference and the benches without pyzmq, PyAV or PyBullet (as on the GPU machine)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from agentrt.cli.__main__ import build_parser, main

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", [["eval"], ["demo"], ["serve"], ["ask", "q"], ["bench", "vla"], ["train"]])
def test_device_and_dtype_parse_on_every_command(command: list[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(command).device == "auto"  # a GPU when there is one
    args = parser.parse_args([*command, "--device", "cuda:1", *([] if command == ["train"] else ["--dtype", "bfloat16"])])
    assert args.device == "cuda:1" and getattr(args, "dtype", "bfloat16") == "bfloat16"


@no_gpu
@pytest.mark.parametrize("command", [
    ["bench", "vla", "--quick", "--device", "cuda"],
    ["eval", "--episodes", "1", "--device", "cuda"],
    ["demo", "--device", "cuda:0"],
    ["serve", "--device", "cuda"],
    ["ask", "what is it?", "--source", "synthetic:32x32@5", "--device", "cuda"],
])
def test_cuda_without_a_gpu_is_one_line_that_says_what_to_use(command: list[str],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(command) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in errors[0]
    assert "no CUDA device here; use --device cpu" in errors[0]


def test_a_bench_without_a_model_refuses_a_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "transport", "--quick", "--device", "cuda"]) == 2
    assert "runs no model" in capsys.readouterr().err


def _fake(name: str, seen: list[tuple[str, bool, str, str]]) -> Any:
    def run(quick: bool, *, device: str, dtype: str) -> dict[str, Any]:
        seen.append((name, quick, device, dtype))
        return {"figure": 1.0}
    return run


def test_bench_device_runs_each_part_on_the_device_with_progress(capsys: pytest.CaptureFixture[str]) -> None:
    from agentrt.bench import device

    seen: list[tuple[str, bool, str, str]] = []
    result = device.run(True, "cpu", "bfloat16", parts={n: _fake(n, seen) for n in ("a", "b")})
    assert seen == [("a", True, "cpu", "bfloat16"), ("b", True, "cpu", "bfloat16")]
    assert result["a"] == {"figure": 1.0} and set(result["wall_s"]) == {"a", "b", "total"}
    err = capsys.readouterr().err
    assert "bench device: 0/2" in err and "bench a on cpu, bfloat16" in err and "bench b on cpu" in err


def test_bench_json_records_device_dtype_and_accelerator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from agentrt.bench import device, vla

    seen: list[tuple[str, bool, str, str]] = []

    def tiny(quick: bool, device: str, dtype: str) -> dict[str, Any]:  # the real vla replay, 1 plan a task
        seen.append(("vla", quick, device, dtype))
        return vla.measure(episodes=1, max_plans=1, device=device, dtype=dtype)

    real = device.run
    monkeypatch.setattr(device, "run", lambda quick, device, dtype: real(quick, device, dtype, parts={"vla": tiny}))
    out = tmp_path / "device.json"
    assert main(["bench", "device", "--quick", "--device", "cpu", "--dtype", "bfloat16", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert seen == [("vla", True, "cpu", "bfloat16")]
    assert doc["device"] == "cpu" and doc["dtype"] == "bfloat16" and doc["accelerator"]
    assert doc["torch"] == torch.__version__ and doc["vla"]["chunks"] == 3
    assert any(row["bench"] == "vla" for row in doc["summary"])
    assert "device check on cpu, bfloat16" in capsys.readouterr().out


def test_recorded_observations_are_what_the_simulator_plays() -> None:
    """The file a GPU machine without PyBullet replays: the first plans of a live lockstep episode."""
    from agentrt.bench.vla import RECORDED, _observations, load_observations

    live = _observations("reach", episodes=1, max_plans=2)[0]
    recorded = load_observations(RECORDED, episodes=1, max_plans=2)["reach"][0]
    for (image, state, instruction), (r_image, r_state, r_instruction) in zip(live, recorded, strict=True):
        assert np.array_equal(image, r_image) and np.allclose(state, r_state) and instruction == r_instruction


BLOCKED = """
import sys
# import zmq -> ImportError, as on the GPU machine measured on (it had neither; nor, perhaps, rich or OpenCV)
for name in ("zmq", "av", "pybullet", "pybullet_data", "cv2", "rich"):
    sys.modules[name] = None
import agentrt.engine, policies.vla.policy, policies.qa.runtime, policies.qa.node
from agentrt.bench import device, engine, qa, vla
from agentrt.cli.__main__ import build_parser

build_parser()  # every command's module imports
tiny = {
    "vla": lambda quick, **on: vla.measure(episodes=1, max_plans=1, **on),
    "qa": lambda quick, **on: qa.measure("nano", model_label="nano", stream_hz=0.02, no_cache_frames=1,
                                         max_new_tokens=2, **on),
}
result = device.run(True, "cpu", "float32", parts=tiny)
device.print_table(result)  # plain columns without rich
assert result["vla"]["observations"].startswith("recorded"), result["vla"]["observations"]
assert result["qa"]["frames"] == 36
assert not {"zmq", "av", "pybullet", "cv2", "rich"} & {m for m, v in sys.modules.items() if v is not None}
print("ran without them")
"""


def test_engine_policies_and_benches_run_without_pyzmq_pyav_pybullet() -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(BLOCKED)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ran without them" in done.stdout and "device check on cpu, float32" in done.stdout
