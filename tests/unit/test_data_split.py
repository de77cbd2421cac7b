"""Splitter: determinism, ratios, stratification and group integrity."""

from __future__ import annotations

from collections import Counter

import pytest

from tunewise.data.split import assign_splits, straddling_groups

IDS = [f"r{i:03d}" for i in range(200)]


def test_deterministic_and_order_independent() -> None:
    one = assign_splits(IDS, seed=3)
    assert one == assign_splits(list(reversed(IDS)), seed=3)
    assert one != assign_splits(IDS, seed=4)
    assert Counter(one.values()) == {"train": 160, "dev": 20, "test": 20}


def test_stratified_keeps_label_proportions() -> None:
    labels = {i: ("rare" if n % 10 == 0 else "common") for n, i in enumerate(IDS)}
    assignment = assign_splits(IDS, ratios=(0.5, 0.25, 0.25), seed=0, labels=labels)
    per_split = Counter((assignment[i], labels[i]) for i in IDS)
    assert per_split[("train", "rare")] == 10 and per_split[("dev", "rare")] == 5 and per_split[("test", "rare")] == 5
    assert per_split[("train", "common")] == 90


def test_groups_never_straddle_splits() -> None:
    groups = {i: f"shop{n % 37}" for n, i in enumerate(IDS)}
    assignment = assign_splits(IDS, seed=1, groups=groups)
    assert straddling_groups(assignment, groups) == {}
    by_group: dict[str, set[str]] = {}
    for i in IDS:
        by_group.setdefault(groups[i], set()).add(assignment[i])
    assert all(len(s) == 1 for s in by_group.values())
    sizes = Counter(assignment.values())
    assert set(sizes) == {"train", "dev", "test"} and sizes["train"] > sizes["dev"]
    assert assignment == assign_splits(IDS, seed=1, groups=groups)


def test_straddling_groups_reported() -> None:
    assert straddling_groups({"a": "train", "b": "dev", "c": "dev"}, {"a": "g", "b": "g", "c": "h"}) == {
        "g": ["train", "dev"]
    }


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_inputs(n: int) -> None:
    assignment = assign_splits(IDS[:n], seed=0)
    assert set(assignment) == set(IDS[:n])
