"""Training across processes (``agentrt.distributed`` under torchrun): two local ranks (gloo on 127.0.0.1)
against one process with the same global batch and seed.

Tolerances, from measurement (tiny models, 10-20 steps, two ranks on this 2-core machine):

- train and distill split every loss term into equal-sized means (the keypoint loss is divided by the
  global batch's count of known places), so two ranks compute one process's loss and gradients up to
  float rounding: the reported losses differed by at most 3.3e-8 (train) and 1.1e-8 (distill) relative,
  the final weights by 4e-7 at most. The test allows 1e-5 for both (x300 headroom for the order of
  the reductions); a normalisation mistake shows above it: dividing the keypoint loss by each slice's
  own count moved the train curve by 7e-5 to 1.4e-3 from step 2 on. (The curve is the running loss
  the progress shows, an exponential average of the per-step losses.)
- train-qa's loss terms are means over each slice's answer tokens and object cells, which differ
  between slices: two streams per rank gave 0.1-4 % per step (0.7 % mean). The test allows 10 % per
  step and 2 % on average, below the 10-20 % that separates one batch from another.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from agentrt.distributed import Ranks, ranks
from agentrt.errors import ConfigError
from tests.policies._distributed_run import run

RUNNER = Path(__file__).with_name("_distributed_run.py")
VLA = {"image_size": 32, "patch_size": 8, "vit_width": 32, "vit_depth": 1, "vit_heads": 2, "pool": 2,
       "width": 32, "depth": 1, "heads": 2, "chunk_steps": 2}
QA = {"image_size": 32, "stem_channels": 8, "vit_patch": 2, "vit_width": 32, "vit_depth": 1, "vit_heads": 2,
      "width": 32, "depth": 2, "heads": 2, "window_frames": 3, "frame_interval_ms": 0.0}
EXACT = 1e-5  # train and distill: relative, per step (measured <= 3.3e-8), and weights, absolute (measured 4e-7)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only
    return env


def torchrun(args: list[str], timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc-per-node 2`` on a free loopback port (c10d rendezvous); the whole process group
    is killed if it outlives ``timeout_s``."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--max-restarts", "0", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started: torchrun and its two ranks
            proc.communicate()
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def two_ranks(kind: str, config: dict[str, Any], folder: Path) -> list[float]:
    """The loss curve rank 0 reported in a two-rank run of the runner."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run-config.json").write_text(json.dumps(config))
    done = torchrun([str(RUNNER), kind, str(folder / "run-config.json"), str(folder / "curve.json")])
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads((folder / "curve.json").read_text()))


def one_process(kind: str, config: dict[str, Any]) -> list[float]:
    threads = torch.get_num_threads()
    try:
        return run(kind, dict(config))
    finally:
        torch.set_num_threads(threads)


def relative(a: list[float], b: list[float]) -> list[float]:
    assert len(a) == len(b) and a
    return [abs(x - y) / abs(x) for x, y in zip(a, b, strict=True)]


def max_weight_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def vla_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two episodes: reach (no goal) and pick_place (a goal), so the ranks' slices hold different
    counts of known keypoint places."""
    from policies.vla.data import CollectConfig, collect

    folder = tmp_path_factory.mktemp("vla") / "data"
    collect(CollectConfig(tasks=("reach", "pick_place"), episodes=1, image_size=32, image_every=4, out_dir=str(folder)))
    return folder


def test_train_on_two_ranks_follows_one_process(vla_data: Path, tmp_path: Path) -> None:
    from policies.vla.model import load_model

    base = {"data_dir": str(vla_data), "steps": 20, "batch_size": 8, "threads": 1, "warmup_steps": 5, "model": VLA}
    one = one_process("train", {**base, "out_dir": str(tmp_path / "one")})
    two = two_ranks("train", {**base, "out_dir": str(tmp_path / "two")}, tmp_path / "two")
    assert max(relative(one, two)) < EXACT, (one, two)
    # the weights rank 0 wrote load with the ordinary loader and are the one process's
    model_one, meta_one = load_model(tmp_path / "one" / "nano_vla.safetensors")
    model_two, meta_two = load_model(tmp_path / "two" / "nano_vla.safetensors")
    assert max_weight_difference(model_one.state_dict(), model_two.state_dict()) < EXACT
    assert meta_two["training"]["processes"] == 2 and meta_two["training"]["batch_size"] == 8
    assert meta_one["training"]["processes"] == 1
    # going on from the checkpoints: rank 0 reads its own and sends it (optimiser state too) to rank 1
    one = one_process("train", {**base, "steps": 26, "out_dir": str(tmp_path / "one")})
    two = two_ranks("train", {**base, "steps": 26, "out_dir": str(tmp_path / "two")}, tmp_path / "two")
    assert len(one) == 6 and max(relative(one, two)) < EXACT, (one, two)


def test_distill_on_two_ranks_follows_one_process(vla_data: Path, tmp_path: Path) -> None:
    from policies.vla.model import load_model
    from policies.vla.train import TrainConfig, train

    teacher = tmp_path / "teacher.safetensors"
    train(TrainConfig(data_dir=str(vla_data), out_dir=str(tmp_path / "t"), weights=str(teacher), steps=5, batch_size=4,
                      threads=1, model=VLA))
    base = {"teacher": str(teacher), "data_dir": str(vla_data), "trajectories": 16, "collect_batch": 4,
            "steps": 10, "batch_size": 8, "threads": 1}  # 4 collection batches: 2 per rank
    one = one_process("distill", {**base, "out": str(tmp_path / "one.safetensors")})
    two = two_ranks("distill", {**base, "out": str(tmp_path / "two.safetensors")}, tmp_path / "two")
    assert max(relative(one, two)) < EXACT, (one, two)
    student_one, meta_one = load_model(tmp_path / "one.safetensors")
    student_two, meta = load_model(tmp_path / "two.safetensors")
    assert max_weight_difference(student_one.state_dict(), student_two.state_dict()) < EXACT
    assert meta["distillation"]["processes"] == 2
    for key in ("trajectories", "kept", "teacher_passes_mean", "teacher_label_share"):  # the ranks' batches, joined
        assert meta["distillation"][key] == meta_one["distillation"][key], key


def test_train_qa_on_two_ranks_follows_one_process(tmp_path: Path) -> None:
    from policies.qa.data import SceneConfig, write_dataset
    from policies.qa.model import load_model

    write_dataset(tmp_path / "data", "train", 8, 0, SceneConfig(image_size=32))
    base = {"data": str(tmp_path / "data"), "steps": 10, "batch": 4, "questions": 3, "max_frames": 3, "log_every": 1,
            "checkpoint_every": 1000, "threads": 1, "model": QA}
    one = one_process("train-qa", {**base, "out": str(tmp_path / "one")})
    two = two_ranks("train-qa", {**base, "out": str(tmp_path / "two")}, tmp_path / "two")
    gaps = relative(one, two)
    assert max(gaps) < 0.10 and sum(gaps) / len(gaps) < 0.02, (one, two)
    model, meta = load_model(tmp_path / "two" / "nano_qa.safetensors")
    assert meta["step"] == 10 and (tmp_path / "two" / "checkpoint.pt").exists()


def test_batches_split_into_the_ranks_streams(tmp_path: Path) -> None:
    """A rank's slice of a QA batch shows each of its streams the images, rows and labels the whole batch
    does, and the slices share no image."""
    import numpy as np

    from policies.qa.batches import BatchMaker
    from policies.qa.data import SceneConfig, load_split, vocabulary, write_dataset
    from policies.qa.model import NanoQAConfig

    write_dataset(tmp_path / "data", "train", 6, 0, SceneConfig(image_size=32))
    scenes, shards = load_split(str(tmp_path / "data"), "train")
    maker = BatchMaker(scenes, shards, NanoQAConfig(words=vocabulary(), **QA), questions=3, max_frames=3, word_dropout=0.1)
    whole = maker.make(np.random.default_rng(0), 6, frames=3)  # 3 frames: moved scenes show two images
    assert len(whole.images) > 6
    seen = 0
    for rank in range(3):
        streams = Ranks(rank=rank, size=3).shard(6)
        part = whole.select(streams)
        seen += len(part.images)
        assert torch.equal(part.images[part.frames], whole.images[whole.frames[streams]])
        assert torch.equal(part.cells[part.frames], whole.cells[whole.frames[streams]])
        assert torch.equal(part.offsets[part.frames], whole.offsets[whole.frames[streams]])
        for name in ("rows", "targets", "subject", "subject_pos", "answer_row"):
            assert torch.equal(getattr(part, name), getattr(whole, name)[streams]), name
        assert part.kinds == whole.kinds[streams]
    assert seen == len(whole.images)  # each image belongs to one stream


def test_a_global_batch_that_does_not_divide_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError) as info:
        Ranks(rank=1, size=2).check_batch(7)
    assert "\n" not in str(info.value) and "multiple of 2" in str(info.value)
    assert Ranks(rank=1, size=4).shard(8) == slice(2, 4) and Ranks().shard(8) == slice(0, 8)
    from agentrt.cli.__main__ import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert ranks() == Ranks(rank=1, size=2, local_rank=1)
    assert main(["train", "--batch-size", "7", "--data", "/nonexistent"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--batch-size 7 is the global batch" in err, err


def test_the_cli_under_torchrun_trains_and_only_rank_0_speaks(vla_data: Path, tmp_path: Path) -> None:
    from policies.vla.model import load_model

    weights = tmp_path / "w.safetensors"
    done = torchrun(["-m", "agentrt.cli", "train", "--data", str(vla_data), "--steps", "3", "--batch-size", "4",
                     "--threads", "1", "--device", "cpu", "--out", str(tmp_path / "run"), "--weights", str(weights),
                     *[f"--set={k}={v}" for k, v in VLA.items()]])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 3 steps") == 1 and done.stdout.count(f"wrote {weights}") == 1, done.stdout
    assert load_model(weights)[1]["training"]["processes"] == 2
