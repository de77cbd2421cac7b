"""Deterministic batch plans: which examples form each micro-batch, epoch by epoch.

The plan is a pure function of (lengths, seed, epoch), so a resumed run rebuilds exactly the same order and skips
to the saved position. Length grouping sorts examples by length inside shuffled mega-batches, so a micro-batch
holds sequences of similar length and little compute goes to padding, while the order still varies per epoch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

MEGABATCH_FACTOR = 16


def epoch_plan(
    lengths: Sequence[int], micro_batch_size: int, *, seed: int, epoch: int, group_by_length: bool = True
) -> list[list[int]]:
    """Micro-batches (lists of example indices) for one epoch; the last one may be short."""
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        size = micro_batch_size * MEGABATCH_FACTOR
        grouped: list[int] = []
        for start in range(0, len(order), size):
            grouped.extend(sorted(order[start : start + size], key=lambda i: -lengths[i]))
        order = grouped
    batches = [order[i : i + micro_batch_size] for i in range(0, len(order), micro_batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    return batches


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of token slots in the plan that are padding (0 = none wasted)."""
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
    real = sum(lengths[i] for b in batches for i in b)
    return 0.0 if padded == 0 else 1 - real / padded


def shard(batches: Sequence[list[int]], rank: int, world_size: int) -> list[list[int]]:
    """This process's share of a plan: every ``world_size``-th micro-batch, trimmed so all ranks get equal counts."""
    usable = len(batches) - len(batches) % world_size
    return [batches[i] for i in range(rank, usable, world_size)]
