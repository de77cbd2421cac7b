"""Grounding check for extraction: target values that never occur in the input text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tunewise.data.normalize import input_text, normalize_text
from tunewise.records import Example


@dataclass
class GroundingReport:
    """Per field: values checked, values absent from the input, empty values; a few examples of each field."""

    checked: Counter[str] = field(default_factory=Counter)
    ungrounded: Counter[str] = field(default_factory=Counter)
    empty: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        fields = sorted(set(self.checked) | set(self.empty))
        return {
            "per_field": {
                f: {
                    "checked": self.checked[f],
                    "ungrounded": self.ungrounded[f],
                    "empty": self.empty[f],
                    "ungrounded_rate": round(self.ungrounded[f] / self.checked[f], 4) if self.checked[f] else 0.0,
                }
                for f in fields
            },
            "examples": self.examples,
        }


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v, prefix)]
    return [(prefix.rstrip("."), value)]


def check_grounding(examples: list[Example], *, max_examples: int = 5) -> GroundingReport:
    """Flag every string/number target value whose normalised form (whitespace collapsed, case-folded) is not a
    substring of the normalised input. Non-dict targets are skipped."""
    report = GroundingReport()
    for example in examples:
        if not isinstance(example.target, dict):
            continue
        haystack = normalize_text(input_text(example))
        for name, value in _leaves(example.target):
            if value is None or (isinstance(value, str) and not value.strip()):
                report.empty[name] += 1
                continue
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                continue
            report.checked[name] += 1
            if normalize_text(str(value)) not in haystack:
                report.ungrounded[name] += 1
                shown = report.examples.setdefault(name, [])
                if len(shown) < max_examples:
                    shown.append({"id": example.id, "value": str(value)})
    return report
