"""`policies.sweep` on this machine: its options, item order, and the dynamic queue of local processes.
The Ray engine: tests/policies/test_sweep_ray.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agentrt.errors import ConfigError, MissingDependencyError
from policies.sweep import InOrder, SweepConfig, sweep
from tests.policies.sweep_workers import BarrierSpec


@pytest.mark.parametrize("kwargs, words", [
    ({"engine": "spark"}, "--engine"),
    ({"workers": 0}, "--workers"),
    ({"address": "auto"}, "only with --engine ray"),
    ({"engine": "ray", "address": "10.0.0.1:6379"}, "ray://HOST:PORT"),
])
def test_a_bad_option_is_one_line(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        SweepConfig(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_in_order_holds_a_result_until_the_earlier_ones_came() -> None:
    got: list[tuple[int, str]] = []
    order = InOrder(lambda i, r: got.append((i, r)))
    for index in (2, 0, 3, 1, 4):
        order(index, f"r{index}")
    assert got == [(i, f"r{i}") for i in range(5)]


def test_one_worker_runs_in_this_process_in_order(tmp_path: Path) -> None:
    got: list[tuple[int, dict[str, object]]] = []
    items = [1, 2, 3]  # no item 0: nothing waits
    sweep(SweepConfig(), BarrierSpec(str(tmp_path), 4), items, lambda i, r: got.append((i, r)))
    assert [(i, r["square"]) for i, r in got] == [(0, 1), (1, 4), (2, 9)]
    import os

    assert {r["pid"] for _, r in got} == {os.getpid()} and (tmp_path / f"closed-{os.getpid()}").exists()


def test_local_processes_take_the_next_item_when_done(tmp_path: Path) -> None:
    items = list(range(6))
    got: dict[int, dict[str, object]] = {}
    sweep(SweepConfig(workers=2), BarrierSpec(str(tmp_path), len(items)), items, lambda i, r: got.update({i: r}))
    assert sorted(got) == items and all(got[i]["square"] == i * i for i in items)
    # item 0 waited for all the others, so the worker that ran it ran nothing else: a dynamic queue
    assert got[0]["waited_for_all"]
    waiter = got[0]["pid"]
    assert [i for i in items if got[i]["pid"] == waiter] == [0]
    assert len({r["pid"] for r in got.values()}) == 2
    assert all(r["threads"] >= 1 for r in got.values())
    # both workers were closed (their simulators freed) before the sweep returned
    assert {p.name for p in tmp_path.glob("closed-*")} == {f"closed-{r['pid']}" for r in got.values()}


def test_ray_missing_is_one_line_saying_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'agentrt\[ray\]'") as info:
        sweep(SweepConfig(engine="ray", workers=2), BarrierSpec("/nonexistent", 2), [1, 2], lambda i, r: None)
    assert "\n" not in str(info.value)


def test_a_worker_that_cannot_open_fails_the_sweep_with_its_error() -> None:
    from agentrt.errors import ModelError
    from tests.policies.sweep_workers import BrokenSpec

    with pytest.raises(ModelError, match="no weights at /nowhere"):
        sweep(SweepConfig(workers=2), BrokenSpec(), [1, 2, 3], lambda i, r: None)
