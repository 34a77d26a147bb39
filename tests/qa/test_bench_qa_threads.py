"""`bench qa --quick` keeps its 60 s on a busy machine: one torch thread unless told otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from agentrt.bench import qa as bench


@pytest.fixture
def threads_back() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def measured_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []

    def measure(spec: str, **kwargs: Any) -> dict[str, Any]:  # what the real one would run with
        seen.append(torch.get_num_threads())
        return {}

    monkeypatch.setattr(bench, "measure", measure)
    return seen


def test_quick_run_uses_one_torch_thread(monkeypatch: pytest.MonkeyPatch, threads_back: None) -> None:
    # With 2 threads on 2 busy cores the tiny model's ops spin-wait for each other: 73 s instead of 27 s.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    seen = measured_threads(monkeypatch)
    bench.run(quick=True)
    assert seen == [1]


def test_threads_the_user_chose_are_kept(monkeypatch: pytest.MonkeyPatch, threads_back: None) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # what `--threads 2` sets
    torch.set_num_threads(2)
    seen = measured_threads(monkeypatch)
    bench.run(quick=True)
    assert seen == [2]
