"""Label quality where rows carry several annotations: Cohen's kappa, Krippendorff's alpha (nominal), majority
merge and a disagreement queue."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.data.normalize import canonical_json
from tunewise.records import Example, Record


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two annotators' labels on the same items.

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    if len(a) != len(b) or not a:
        raise ValueError("cohen_kappa needs two non-empty label lists of equal length")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    if expected == 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable | None]]) -> float:
    """Krippendorff's alpha for nominal data.

    Args:
        units: one sequence per item holding each annotator's value (``None`` = missing). Items with fewer
            than two values are not pairable and are ignored.

    Returns:
        Alpha; 1.0 when every pairable value is the same.

    Raises:
        ValueError: no item has two or more values.
    """
    coincidence: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        for i, x in enumerate(values):
            for j, y in enumerate(values):
                if i != j:
                    coincidence[(x, y)] += 1.0 / (m - 1)
    if not coincidence:
        raise ValueError("krippendorff_alpha needs at least one item with two or more values")
    marginals: dict[Hashable, float] = defaultdict(float)
    for (x, _), weight in coincidence.items():
        marginals[x] += weight
    n = sum(marginals.values())
    disagree_observed = sum(w for (x, y), w in coincidence.items() if x != y)
    disagree_expected = sum(marginals[x] * marginals[y] for x in marginals for y in marginals if x != y)
    if disagree_expected == 0:
        return 1.0
    return 1.0 - (n - 1) * disagree_observed / disagree_expected


def _fields(target: Any) -> dict[str, Any]:
    if isinstance(target, dict):
        return {k: canonical_json(v) if isinstance(v, dict | list) else v for k, v in target.items()}
    return {"label": target}


@dataclass(frozen=True)
class FieldAgreement(Record):
    """Agreement on one field over the items annotated more than once."""

    items: int
    krippendorff_alpha: float | None
    """``None`` when no item has two values."""
    cohen_kappa: float | None = None
    """Only with exactly two annotators (``None`` otherwise, or when they never annotated the same item)."""


@dataclass(frozen=True)
class Agreement(Record):
    """Inter-annotator agreement per field (sorted by name), and how many (item, field) pairs annotators disputed."""

    annotators: list[str]
    per_field: dict[str, FieldAgreement]
    disagreements: int


def merge_annotations(
    annotated: dict[str, list[tuple[str, Example]]],
) -> tuple[list[Example], Agreement, list[dict[str, Any]]]:
    """Merge several annotations of each item by majority vote per field and measure agreement.

    Args:
        annotated: item id -> ``(annotator, example)`` pairs, in file order.

    Returns:
        ``(merged examples, agreement, disagreement queue rows)``. A tie goes to the value of the annotator whose
        name sorts first; every field where annotators differ enters the queue.
    """
    annotators = sorted({name for pairs in annotated.values() for name, _ in pairs})
    merged: list[Example] = []
    queue: list[dict[str, Any]] = []
    per_field_units: dict[str, list[list[Any]]] = defaultdict(list)
    for item_id, pairs in annotated.items():
        by_annotator = {name: _fields(example.target) for name, example in sorted(pairs, key=lambda p: p[0])}
        field_names = sorted({f for values in by_annotator.values() for f in values})
        first = pairs[0][1]
        target = dict(first.target) if isinstance(first.target, dict) else first.target
        for name in field_names:
            votes = {a: values.get(name) for a, values in by_annotator.items()}
            per_field_units[name].append([votes.get(a) for a in annotators])
            tally = Counter(v for v in votes.values() if v is not None)
            if len(tally) > 1:
                queue.append({"id": item_id, "field": name, "values": votes})
            if tally:
                best = max(tally.values())
                winner = next(v for v in votes.values() if v is not None and tally[v] == best)
                winner_raw = next(
                    e.target for a, e in sorted(pairs, key=lambda p: p[0]) if _fields(e.target).get(name) == winner
                )
                if isinstance(target, dict):
                    target[name] = winner_raw[name]
                else:
                    target = winner_raw
        merged.append(
            dataclasses.replace(first, target=target, meta={**first.meta, "annotators": sorted(by_annotator)})
        )
    per_field = {name: _field_agreement(rows, annotators) for name, rows in sorted(per_field_units.items())}
    return merged, Agreement(annotators=annotators, per_field=per_field, disagreements=len(queue)), queue


def _field_agreement(rows: list[list[Any]], annotators: list[str]) -> FieldAgreement:
    try:
        alpha: float | None = round(krippendorff_alpha_nominal(rows), 4)
    except ValueError:
        alpha = None
    kappa = None
    if len(annotators) == 2:
        both = [(r[0], r[1]) for r in rows if r[0] is not None and r[1] is not None]
        kappa = round(cohen_kappa([x for x, _ in both], [y for _, y in both]), 4) if both else None
    return FieldAgreement(items=len(rows), krippendorff_alpha=alpha, cohen_kappa=kappa)
