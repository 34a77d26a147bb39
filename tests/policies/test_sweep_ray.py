"""`policies.sweep` on Ray: a local Ray of 2 CPUs (ray.init), actors over a dynamic queue of items, and the
nano VLA's lockstep episodes equal to a one-process run. Two nodes: test_sweep_ray_cluster.py."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from policies.sweep import LOOPBACK, SweepConfig, sweep
from tests.policies.sweep_workers import BarrierSpec, descendants, wait_gone

os.environ.setdefault(LOOPBACK, "0")  # read when ray is imported: the test's Ray stays on 127.0.0.1
ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'agentrt[ray]')")


def test_an_address_nothing_answers_on_is_one_line_at_once(tmp_path: Path) -> None:
    from agentrt.errors import ConfigError

    with pytest.raises(ConfigError, match=r"ray://127.0.0.1:1: no Ray client server answers there") as info:
        sweep(SweepConfig(engine="ray", address="ray://127.0.0.1:1", workers=2), BarrierSpec(str(tmp_path), 2), [1, 2],
              lambda i, r: None)
    assert "\n" not in str(info.value) and not ray.is_initialized()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    before = descendants()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    started = descendants() - before
    try:
        yield
    finally:
        ray.shutdown()  # the GCS and raylet ignore SIGTERM: nothing else ends them
    assert started and not wait_gone(started), "Ray processes outlived ray.shutdown()"


def test_ray_actors_take_the_next_item_when_done(local_ray: None, tmp_path: Path) -> None:
    items = list(range(6))
    got: dict[int, dict[str, object]] = {}
    sweep(SweepConfig(engine="ray", workers=2), BarrierSpec(str(tmp_path), len(items)), items,
          lambda i, r: got.update({i: r}))
    assert sorted(got) == items and all(got[i]["square"] == i * i for i in items)
    assert got[0]["waited_for_all"] and [i for i in items if got[i]["pid"] == got[0]["pid"]] == [0]
    assert len({r["pid"] for r in got.values()}) == 2 and os.getpid() not in {r["pid"] for r in got.values()}
    assert len(list(tmp_path.glob("closed-*"))) == 2  # each actor closed its worker
    assert ray.is_initialized()  # a Ray the caller started is the caller's to shut down


def test_ray_eval_equals_one_process_on_the_lockstep_clock(local_ray: None) -> None:
    from policies.vla.evaluate import EvalSpec, evaluate_policy, sweep_rows
    from policies.vla.policy import NanoPolicy, PolicyConfig

    config = PolicyConfig(decoding="ar")
    plain = evaluate_policy(NanoPolicy(config), "reach", decoding="ar", episodes=3, seed=100_000)
    [row] = sweep_rows({"ar": config}, [EvalSpec(task="reach", decoding="ar")], episodes=3, seed=100_000,
                       config=SweepConfig(engine="ray", workers=2))
    assert row.details["per_episode"] == plain.details["per_episode"]
    assert [e["seed"] for e in row.details["per_episode"]] == [100_000, 100_001, 100_002]
    assert (row.success_rate, row.iterations, row.episodes) == (plain.success_rate, plain.iterations, 3)
