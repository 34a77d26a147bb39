"""The success-rate interval `agentrt eval` prints beside every rate (policies.intervals.wilson_interval)."""

from __future__ import annotations

import pytest

from policies.intervals import wilson_interval
from policies.vla.evaluate import TEST_SEED, VALIDATION_SEED, EpisodeOutcome, EvalSpec, summarize
from policies.vocabulary import WordCheck


@pytest.mark.parametrize(("successes", "n", "expected"), [
    (0, 10, (0.0, 0.2775)),  # published Wilson bounds (e.g. statsmodels proportion_confint method="wilson")
    (20, 20, (0.8389, 1.0)),
    (49, 50, (0.8950, 0.9965)),
    (9, 10, (0.5958, 0.9821)),
    (28, 50, (0.4231, 0.6884)),
])
def test_wilson_bounds_match_the_published_values(successes: int, n: int, expected: tuple[float, float]) -> None:
    low, high = wilson_interval(successes, n)
    assert low == pytest.approx(expected[0], abs=1e-4) and high == pytest.approx(expected[1], abs=1e-4)


def test_the_interval_is_symmetric_contains_the_rate_and_narrows_with_more_episodes() -> None:
    for n in (1, 7, 50):
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            flipped = wilson_interval(n - k, n)
            assert low == pytest.approx(1 - flipped[1]) and high == pytest.approx(1 - flipped[0])
            assert low <= k / n <= high
    assert wilson_interval(45, 50)[0] > wilson_interval(9, 10)[0]  # same rate, five times the episodes


def test_nothing_measured_is_the_whole_range_and_impossible_counts_are_refused() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for successes, n in ((3, 2), (-1, 5), (0, -1)):
        with pytest.raises(ValueError, match="0 <= successes <= n"):
            wilson_interval(successes, n)


def test_an_eval_row_carries_its_interval_and_the_test_seeds_are_not_the_validation_seeds() -> None:
    outcomes = [EpisodeOutcome(seed=TEST_SEED + i, success=i != 3, steps=30, sim_time_s=1.5, time_s=0.1,
                               told="touch the red cube", check=WordCheck(("touch", "the", "red", "cube"), (), 0))
                for i in range(10)]
    row = summarize(EvalSpec(task="reach", decoding="ar"), outcomes).as_dict()
    assert row["success_rate"] == 0.9 and row["success_ci95"] == [0.596, 0.982]
    assert TEST_SEED >= VALIDATION_SEED + 100_000  # room for 100k selection episodes before the test range
