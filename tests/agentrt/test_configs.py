"""One `--set` grammar and one config type check (agentrt.configs), whoever reads them."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from agentrt.errors import ConfigError

# Texts the old parsers read differently (JSON-ish in train, YAML in launch files and streams).
VALUES = ["15", "1.5", "true", "[1, 2]", "'0'", "a=b", "", "{loop: true}"]


def _by_launch(texts: list[str]) -> list[Any]:
    from agentrt.launch import apply_overrides

    raw: dict[str, dict[str, Any]] = {}
    apply_overrides(raw, [f"n.k{i}={t}" for i, t in enumerate(texts)])
    return [raw["n"][f"k{i}"] for i in range(len(texts))]


def _by_stream(texts: list[str]) -> list[Any]:
    from streams.registry import parse_overrides

    got = parse_overrides([f"k{i}={t}" for i, t in enumerate(texts)])
    return [got[f"k{i}"] for i in range(len(texts))]


def _by_train(texts: list[str]) -> list[Any]:
    from agentrt.cli import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args([f"--set=k{i}={t}" for i, t in enumerate(texts)])
    from agentrt.configs import parse_set

    assert train.overrides(args) == parse_set(args.set)  # the command's reader is the one grammar
    return [train.overrides(args)[f"k{i}"] for i in range(len(texts))]


def test_every_set_reads_values_the_same_way() -> None:
    from agentrt.configs import parse_set

    expected = parse_set([f"k{i}={t}" for i, t in enumerate(VALUES)])
    assert expected == {"k0": 15, "k1": 1.5, "k2": True, "k3": [1, 2], "k4": "0", "k5": "a=b", "k6": "",
                        "k7": {"loop": True}}
    want = [expected[f"k{i}"] for i in range(len(VALUES))]
    assert _by_launch(VALUES) == want
    assert _by_stream(VALUES) == want
    assert _by_train(VALUES) == want


def test_set_errors_name_the_grammar() -> None:
    from agentrt.configs import parse_set
    from agentrt.launch import apply_overrides

    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set(["fps"])
    with pytest.raises(ConfigError, match="node.param=value"):
        apply_overrides({}, ["fps=15"])  # a launch file's key names its node


def test_one_type_check_for_launch_params_and_source_configs() -> None:
    from agentrt.configs import type_ok
    from streams.synthetic import SyntheticConfig

    assert type_ok(3, float) == (True, 3.0)
    assert type_ok(True, int) == (False, True)
    assert type_ok([1, 2], tuple[int, ...]) == (True, (1, 2))
    assert type_ok("x", int | None) == (False, "x")
    with pytest.raises(ConfigError, match=r"SyntheticConfig.width: expected int, got True"):
        SyntheticConfig(width=True)  # type: ignore[arg-type]
    assert SyntheticConfig(fps=10).fps == 10.0 and isinstance(SyntheticConfig(fps=10).fps, float)
