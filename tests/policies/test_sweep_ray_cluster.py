"""`policies.sweep` over a two-node Ray cluster on this machine (`ray.cluster_utils.Cluster`, 1 CPU a node):
the two workers land one on each node and share one queue."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from policies.sweep import LOOPBACK, SweepConfig, sweep
from tests.policies.sweep_workers import BarrierSpec, descendants, wait_gone

os.environ.setdefault(LOOPBACK, "0")  # read when ray is imported: both nodes stay on 127.0.0.1
ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'agentrt[ray]')")


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[None]:
    from ray.cluster_utils import Cluster

    before = descendants()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
        started = descendants() - before
        yield
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert started and not wait_gone(started), "Ray processes outlived cluster.shutdown()"


def test_the_workers_spread_over_both_nodes(two_nodes: None, tmp_path: Path) -> None:
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    items = list(range(5))
    got: dict[int, dict[str, object]] = {}
    sweep(SweepConfig(engine="ray", workers=2), BarrierSpec(str(tmp_path), len(items)), items,
          lambda i, r: got.update({i: r}))
    assert sorted(got) == items and all(got[i]["square"] == i * i for i in items)
    assert len({r["node"] for r in got.values()}) == 2  # 1 CPU a node, a CPU a worker: one on each
    assert [i for i in items if got[i]["pid"] == got[0]["pid"]] == [0]  # the queue is shared across nodes
