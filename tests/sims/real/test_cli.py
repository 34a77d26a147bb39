"""`agentrt bridge --calibrate` walks a person through calibration; here the emulator plays the person's hands."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from agentrt.cli.__main__ import main
from sims.real.arms import get_arm
from sims.real.calibration import load_calibration
from sims.real.emulator import PtyBusEmulator

ZERO = {1: 2000, 2: 2100, 3: 1900, 4: 2050, 5: 2048, 6: 1500}


def test_calibrate_records_and_saves_a_calibration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with PtyBusEmulator("feetech", ids=list(ZERO)) as emulator:
        bank = emulator.bank

        def zero_pose(prompt: str = "") -> str:  # step 1: the arm is put in the zero pose
            for i, steps in ZERO.items():
                bank.set_value(i, "present_position", steps)
            return ""

        class Hands(io.StringIO):  # step 2: every joint swept, gripper opened, then Enter
            def readline(self, *args: object) -> str:
                for offset in (-600, 700):
                    time.sleep(0.15)
                    for i, steps in ZERO.items():
                        bank.set_value(i, "present_position", steps + (abs(offset) if i == 6 else offset))
                time.sleep(0.15)
                return "\n"

        monkeypatch.setattr("builtins.input", zero_pose)
        monkeypatch.setattr("sys.stdin", Hands())
        path = tmp_path / "calib" / "so100.json"
        assert main(["bridge", "--arm", "so100", "--port", emulator.port, "--timeout-ms", "200", "--calibrate", str(path)]) == 0
        assert bank.torque_writes(0) == list(ZERO)  # the torque went off first
    calibration = load_calibration(path, get_arm("so100"))
    assert [j.zero_steps for j in calibration.joints] == [2000, 2100, 1900, 2050, 2048]
    assert (calibration.joints[0].min_steps, calibration.joints[0].max_steps) == (1400, 2700)
    assert calibration.gripper is not None and calibration.gripper.open_steps == 2200
    assert f"calibration saved to {path}" in capsys.readouterr().out


def test_calibrate_checks_the_servos_first_and_refuses_another_model_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    koch = get_arm("koch").models_by_id
    with PtyBusEmulator("dynamixel", ids=list(koch), models={**koch, 3: koch[1]}) as emulator:  # an XL430 at servo 3
        path = tmp_path / "koch.json"
        assert main(["bridge", "--arm", "koch", "--port", emulator.port, "--timeout-ms", "200", "--calibrate", str(path)]) == 2
        assert emulator.bank.writes == []  # nothing written: the torque stays as it was
    err = capsys.readouterr().err.strip()
    assert "servo 3" in err and "expected" in err and "\n" not in err and "Traceback" not in err
    assert not path.exists()


def test_the_bridge_cli_refuses_a_real_arm_without_calibration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bridge", "--arm", "so100", "--port", "/dev/ttyNOPE-agentrt", "--insecure"]) == 2
    assert "--calibrate calib/so100.json" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "address"), [([], "127.0.0.1"), (["--bind", "127.0.0.2"], "127.0.0.2")])
def test_an_insecure_bridge_listens_on_this_machine_only_unless_told(
    extra: list[str], address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bridge", "--arm", "so100", "--dry-run", "--insecure", "--state-port", "0", "--actions-port", "0",
            "--duration", "1", *extra]
    assert main(args) == 0
    listening = [line for line in capsys.readouterr().out.splitlines() if "listening" in line]
    assert len(listening) == 1 and f"state tcp://{address}:" in listening[0] and f"actions tcp://{address}:" in listening[0]


def test_a_bridge_with_keys_listens_on_every_interface() -> None:
    from sims.real.bridge import BridgeConfig

    assert BridgeConfig(keys_dir="keys").bind == "0.0.0.0"  # CURVE admits only authorised keys
    assert BridgeConfig(insecure=True).bind == "127.0.0.1"
