"""Deterministic seeded splits: stratified by label, or group-aware so that no group straddles two splits.

The order in which units (rows, or groups of rows) are dealt out is the SHA-256 of ``seed`` and the unit's key,
so the assignment depends only on the set of rows and the seed, never on file order.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from tunewise.records import Record

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True, kw_only=True)
class Splitting(Record):
    """How a version's rows were split, and which groups ended up in more than one split."""

    mode: str
    """``keep`` (the spec's files) or ``resplit``."""
    seed: int
    group_key: str | None
    stratified: bool
    """Label proportions were kept equal across splits (a classify resplit without groups)."""
    groups_across_splits: dict[str, list[str]]
    """Group -> its splits, for every group in more than one (empty without a group key)."""


def _order_key(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def _counts(n: int, ratios: Sequence[float]) -> dict[str, int]:
    """Rows per split for ``n`` rows: dev and test rounded, train takes the rest."""
    dev, test = round(n * ratios[1]), round(n * ratios[2])
    if dev + test > n:
        test = n - dev
    return {"train": n - dev - test, "dev": dev, "test": test}


def assign_splits(
    ids: Sequence[str],
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    labels: dict[str, str] | None = None,
    groups: dict[str, str] | None = None,
) -> dict[str, str]:
    """Map every id to ``train``, ``dev`` or ``test``.

    Args:
        ids: unique row ids.
        ratios: train/dev/test fractions (summing to 1).
        seed: changes the assignment; the same seed and ids always give the same one.
        labels: id -> label, to keep label proportions per split (ignored when ``groups`` is given).
        groups: id -> group key; rows of one group land in one split. Ids without a group are their own group.

    Returns:
        id -> split name.
    """
    if groups:
        return _assign_groups(ids, ratios, seed, groups)
    strata: dict[str, list[str]] = defaultdict(list)
    for row_id in ids:
        strata[labels.get(row_id, "") if labels else ""].append(row_id)
    assignment: dict[str, str] = {}
    for stratum in sorted(strata):
        members = sorted(strata[stratum], key=lambda i: _order_key(seed, i))
        counts = _counts(len(members), ratios)
        cut_test, cut_dev = counts["test"], counts["test"] + counts["dev"]
        for position, row_id in enumerate(members):
            assignment[row_id] = "test" if position < cut_test else "dev" if position < cut_dev else "train"
    return assignment


def _assign_groups(ids: Sequence[str], ratios: Sequence[float], seed: int, groups: dict[str, str]) -> dict[str, str]:
    members: dict[str, list[str]] = defaultdict(list)
    for row_id in ids:
        group = groups.get(row_id)
        members[f"g:{group}" if group is not None else f"id:{row_id}"].append(row_id)
    targets = {name: ratio * len(ids) for name, ratio in zip(SPLITS, ratios, strict=True)}
    filled = dict.fromkeys(SPLITS, 0)
    assignment: dict[str, str] = {}
    for unit in sorted(members, key=lambda u: _order_key(seed, u)):
        # The split furthest below its target takes the next group; train wins ties.
        name = max(SPLITS, key=lambda s: (targets[s] - filled[s], s == "train"))
        filled[name] += len(members[unit])
        for row_id in members[unit]:
            assignment[row_id] = name
    return assignment


def straddling_groups(assignment: dict[str, str], groups: dict[str, str]) -> dict[str, list[str]]:
    """Groups whose rows sit in more than one split: group -> sorted split names."""
    seen: dict[str, set[str]] = defaultdict(set)
    for row_id, split in assignment.items():
        if row_id in groups and groups[row_id] is not None:
            seen[groups[row_id]].add(split)
    return {g: sorted(s, key=SPLITS.index) for g, s in sorted(seen.items()) if len(s) > 1}
