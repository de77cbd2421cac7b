"""The trend: a window cut into buckets of ``monitor.window``, each holding the rows created in it."""

from __future__ import annotations

import math
from typing import TypeVar

from tunewise.monitor.traffic import TrafficRow

Row = TypeVar("Row", bound=TrafficRow)

MAX_BUCKETS = 500


def bucket_edges(start: float, end: float, width: float) -> list[tuple[float, float]]:
    """``[start, start + width), …`` up to ``end``; the last bucket may be shorter.

    Raises:
        ValueError: a width that is not positive, or more than :data:`MAX_BUCKETS` buckets.
    """
    if width <= 0:
        raise ValueError(f"a bucket must last more than 0 s, got {width}")
    if end <= start:
        return [(start, start + width)]
    count = math.ceil((end - start) / width)
    if count > MAX_BUCKETS:
        raise ValueError(f"{count} buckets of {width:g} s: widen monitor.window or narrow --since/--until")
    return [(start + i * width, min(start + (i + 1) * width, end)) for i in range(count)]


def split_rows(rows: list[Row], edges: list[tuple[float, float]]) -> list[list[Row]]:
    """The rows of each bucket (``start <= created < end``; the last bucket also takes a row at its end)."""
    buckets: list[list[Row]] = [[] for _ in edges]
    for row in rows:
        for index, (low, high) in enumerate(edges):
            last = index == len(edges) - 1
            if low <= row.created < high or (last and row.created == high):
                buckets[index].append(row)
                break
    return buckets
