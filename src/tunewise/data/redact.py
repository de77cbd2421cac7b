"""Apply PII redaction to examples so that input and target stay aligned.

Values are detected in every non-system input turn and every string of the target; then each detected value is
replaced everywhere it occurs in that example (input and target alike) by the same token, so a phone number the
target copies from the input is redacted identically in both.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tunewise.data.pii import detect, replacement
from tunewise.records import Example, Record

MAX_PII_EXAMPLES = 10
NO_PERSON_NAMES = "not detected: no named-entity recognizer is available"


@dataclass(frozen=True)
class RowWithPii(Record):
    """A row where PII was found, and the comma-separated types found in it."""

    id: str
    types: str


@dataclass(frozen=True, kw_only=True)
class PiiReport(Record):
    """What redaction found: spans per type (sorted by type), rows touched, rows dropped (``drop_row`` mode)."""

    mode: str
    counts: dict[str, int] = field(default_factory=dict)
    rows_with_pii: int = 0
    dropped: list[str] = field(default_factory=list)
    examples: list[RowWithPii] = field(default_factory=list)
    person_names: str = NO_PERSON_NAMES


def combine_pii_reports(first: PiiReport, second: PiiReport) -> PiiReport:
    """One report for the rows of both (of the same mode); the first :data:`MAX_PII_EXAMPLES` examples are kept."""
    counts = Counter(first.counts)
    counts.update(second.counts)
    return PiiReport(
        mode=first.mode,
        counts=dict(sorted(counts.items())),
        rows_with_pii=first.rows_with_pii + second.rows_with_pii,
        dropped=first.dropped + second.dropped,
        examples=(first.examples + second.examples)[:MAX_PII_EXAMPLES],
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _substitute(value: Any, pattern: re.Pattern[str], tokens: dict[str, str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(lambda m: tokens[m.group()], value)
    if isinstance(value, dict):
        return {k: _substitute(v, pattern, tokens) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, pattern, tokens) for v in value]
    return value


def mask_everywhere(values: list[Any], *, kinds: list[str] | None = None) -> list[Any]:
    """``values`` (strings, or lists and dicts of them) with each PII value found in any of them replaced by its
    typed token (``[EMAIL]``…) everywhere it appears, so a value the output copies from the prompt gets one token."""
    kind_of = {span.value: span.kind for value in values for text in _strings(value) for span in detect(text, kinds)}
    if not kind_of:
        return values
    tokens = {value: replacement(kind, value, "mask", b"") for value, kind in kind_of.items()}
    pattern = re.compile("|".join(re.escape(v) for v in sorted(tokens, key=len, reverse=True)))
    return [_substitute(value, pattern, tokens) for value in values]


def redact_example(
    example: Example, *, mode: str, salt: bytes, kinds: list[str] | None = None
) -> tuple[Example, Counter[str]]:
    """Detect PII in one example and (for ``mask``/``hash``) replace it in input and target alike.

    Returns:
        The (possibly) redacted example and the count of detected spans per type.
    """
    texts = [m["content"] for m in example.messages if m["role"] != "system"] + _strings(example.target)
    counts: Counter[str] = Counter()
    kind_of: dict[str, str] = {}
    for text in texts:
        for span in detect(text, kinds):
            counts[span.kind] += 1
            kind_of.setdefault(span.value, span.kind)
    if not kind_of or mode not in ("mask", "hash"):
        return example, counts
    tokens = {value: replacement(kind, value, mode, salt) for value, kind in kind_of.items()}
    # Longest first, so a value containing another is replaced whole.
    pattern = re.compile("|".join(re.escape(v) for v in sorted(tokens, key=len, reverse=True)))
    messages = [
        m if m["role"] == "system" else {**m, "content": _substitute(m["content"], pattern, tokens)}
        for m in example.messages
    ]
    return dataclasses.replace(example, messages=messages, target=_substitute(example.target, pattern, tokens)), counts


def redact_examples(
    examples: list[Example],
    *,
    mode: str,
    salt: bytes,
    kinds: list[str] | None = None,
    max_examples: int = MAX_PII_EXAMPLES,
) -> tuple[list[Example], PiiReport]:
    """Redact a list of examples; ``drop_row`` drops every example with PII, ``report`` changes nothing.

    Returns:
        The kept (redacted) examples and a :class:`PiiReport`.
    """
    if mode == "off":
        return examples, PiiReport(mode=mode)
    kept: list[Example] = []
    found: Counter[str] = Counter()
    flagged: list[RowWithPii] = []
    dropped: list[str] = []
    for example in examples:
        redacted, counts = redact_example(example, mode=mode, salt=salt, kinds=kinds)
        if counts:
            found.update(counts)
            flagged.append(RowWithPii(id=example.id, types=", ".join(sorted(counts))))
            if mode == "drop_row":
                dropped.append(example.id)
                continue
        kept.append(redacted)
    report = PiiReport(
        mode=mode,
        counts=dict(sorted(found.items())),
        rows_with_pii=len(flagged),
        dropped=dropped,
        examples=flagged[:max_examples],
    )
    return kept, report
