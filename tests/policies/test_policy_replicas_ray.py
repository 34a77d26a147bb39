"""Policy-server replicas as Ray actors on a private Ray (started and shut down by ``Replicas``): bound on
127.0.0.1, each robot served by the replica it picked with one server's chunks, a killed actor named in
one line, and every Ray process gone after."""

from __future__ import annotations

import os

import pytest

from policies.sweep import LOOPBACK
from policies.vla.policy import default_weights
from policies.vla.replicas import ReplicaConfig, ReplicaError, Replicas
from tests.policies.replica_robots import SERVER, assert_same, observations, replay, single_server
from tests.policies.sweep_workers import descendants, wait_gone

os.environ.setdefault(LOOPBACK, "0")  # read when ray is imported: the test's Ray stays on 127.0.0.1
ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'agentrt[ray]')")
pytestmark = pytest.mark.skipif(not default_weights("consistency").exists(), reason="no shipped weights")


def test_ray_replicas_serve_their_robots_as_one_server_would() -> None:
    robots = observations()
    reference = single_server(robots)
    before = descendants()
    replicas = Replicas(ReplicaConfig(replicas=2, engine="ray", port=0), SERVER)
    with replicas:
        assert ray.is_initialized()
        started = descendants() - before
        endpoints = replicas.endpoints
        assert len(set(endpoints)) == 2 and all(e.startswith("tcp://127.0.0.1:") for e in endpoints)
        chunks, picked = replay(",".join(endpoints), robots)
        replicas.check()  # both alive
        ray.kill(replicas._actors[1])
        with pytest.raises(ReplicaError, match=rf"replica 1 \({endpoints[1]}\): \w+") as info:
            replicas.check()
        assert "\n" not in str(info.value)
    assert not ray.is_initialized()  # the private Ray is the replicas' to shut down
    assert started and not wait_gone(started), "Ray processes outlived close()"
    assert_same(chunks, reference)
    assert picked == {f"robot{i}": endpoints[i % 2] for i in range(4)}
    [stats] = replicas.stats  # the killed replica has none to give
    assert set(stats["served"]) == {"robot0", "robot2"} and stats["chunks"] == 6
