"""Cross-split leakage: dev/test rows whose input nearly repeats a train row, and what to do about them."""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.data.dedup import NearDupIndex
from tunewise.data.normalize import input_text
from tunewise.records import Example, Record


@dataclass(frozen=True)
class Leak(Record):
    """Row ``id`` of ``split`` has a near twin ``twin`` in train (``similarity``: estimated Jaccard, 4 decimals)."""

    id: str
    split: str
    twin: str
    similarity: float


@dataclass(frozen=True)
class LeakageReport(Record):
    """The cross-split leakage check: its threshold, the action taken, and every leaking row."""

    threshold: float
    action: str
    leaks: list[Leak]


def find_leaks(
    splits: dict[str, list[Example]], *, threshold: float = 0.8, shingle_size: int = 3, num_perm: int = 128
) -> list[Leak]:
    """Every dev/test example with a near-duplicate (estimated Jaccard >= ``threshold``) in train."""
    index = NearDupIndex(threshold, shingle_size=shingle_size, num_perm=num_perm)
    for example in splits.get("train", []):
        minhash = index.signature(input_text(example))
        if minhash is not None:
            index.add(example.id, minhash)
    leaks = []
    for name in ("dev", "test"):
        for example in splits.get(name, []):
            minhash = index.signature(input_text(example))
            twins = index.query(minhash) if minhash is not None else []
            if twins:
                leaks.append(Leak(example.id, name, twins[0][0], round(twins[0][1], 4)))
    return leaks


def apply_leakage_action(splits: dict[str, list[Example]], leaks: list[Leak], action: str) -> dict[str, list[Example]]:
    """``report``: unchanged; ``move``: leaking rows join train; ``drop``: leaking rows are removed.

    Raises:
        ValueError: an unknown action.
    """
    if action not in ("report", "move", "drop"):
        raise ValueError(f"unknown leakage action {action!r} (expected report, move or drop)")
    if action == "report" or not leaks:
        return splits
    leaking = {(leak.split, leak.id) for leak in leaks}
    out = {name: [e for e in rows if (name, e.id) not in leaking] for name, rows in splits.items()}
    if action == "move":
        moved = [e for name, rows in splits.items() for e in rows if (name, e.id) in leaking]
        out["train"] = list(out.get("train", [])) + moved
    return out
