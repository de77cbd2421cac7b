"""Grounding check for extraction: target values that never occur in the input text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from tunewise.data.normalize import input_text, normalize_text
from tunewise.records import Example, Record


@dataclass(frozen=True)
class FieldGrounding(Record):
    """One target field: values checked, values absent from the input, empty values, and the absent share."""

    checked: int
    ungrounded: int
    empty: int
    ungrounded_rate: float


@dataclass(frozen=True)
class UngroundedValue(Record):
    """A target value of row ``id`` that does not occur in its input."""

    id: str
    value: str


@dataclass(frozen=True)
class GroundingReport(Record):
    """Per field (sorted by name): what was checked and found ungrounded; a few ungrounded values of each field."""

    per_field: dict[str, FieldGrounding]
    examples: dict[str, list[UngroundedValue]]


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v, prefix)]
    return [(prefix.rstrip("."), value)]


def check_grounding(examples: list[Example], *, max_examples: int = 5) -> GroundingReport:
    """Flag every string/number target value whose normalised form (whitespace collapsed, case-folded) is not a
    substring of the normalised input. Non-dict targets are skipped."""
    checked: Counter[str] = Counter()
    ungrounded: Counter[str] = Counter()
    empty: Counter[str] = Counter()
    shown: dict[str, list[UngroundedValue]] = {}
    for example in examples:
        if not isinstance(example.target, dict):
            continue
        haystack = normalize_text(input_text(example))
        for name, value in _leaves(example.target):
            if value is None or (isinstance(value, str) and not value.strip()):
                empty[name] += 1
                continue
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                continue
            checked[name] += 1
            if normalize_text(str(value)) not in haystack:
                ungrounded[name] += 1
                listed = shown.setdefault(name, [])
                if len(listed) < max_examples:
                    listed.append(UngroundedValue(id=example.id, value=str(value)))
    per_field = {
        name: FieldGrounding(
            checked=checked[name],
            ungrounded=ungrounded[name],
            empty=empty[name],
            ungrounded_rate=round(ungrounded[name] / checked[name], 4) if checked[name] else 0.0,
        )
        for name in sorted(set(checked) | set(empty))
    }
    return GroundingReport(per_field=per_field, examples=shown)
