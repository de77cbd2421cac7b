"""Canonical text forms: what two rows must share to count as the same input, and how records hash."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

from tunewise.records import Example

_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed to single spaces and stripped."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def input_text(example: Example) -> str:
    """The user-visible input of an example: every non-system turn, joined by newlines."""
    return "\n".join(m["content"] for m in example.messages if m["role"] != "system")


def input_hash(example: Example) -> str:
    """SHA-256 of the normalised input: equal for exact duplicates that differ only in case or spacing."""
    return hashlib.sha256(normalize_text(input_text(example)).encode("utf-8")).hexdigest()


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) for hashing."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_hash(example: Example) -> str:
    """SHA-256 of an example's messages and target (not its provenance): changes when its content changes."""
    payload = canonical_json({"messages": example.messages, "target": example.target})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def resolve_path(example: Example, row: dict[str, Any] | None, key: str) -> Any:
    """Look up ``key`` for a row: ``target.company`` / ``meta.x`` on the example, else a raw row field.

    Returns ``None`` when the key is absent.
    """
    head, _, rest = key.partition(".")
    if head == "target" and rest:
        value: Any = example.target
    elif head == "meta" and rest:
        value = example.meta
    else:
        value, rest = row if row is not None else {}, key
    for part in rest.split(".") if rest else []:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
