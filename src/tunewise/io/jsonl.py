"""JSON Lines reading with line-numbered errors, and atomic JSONL writing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tunewise.errors import InputError
from tunewise.io.atomic import atomic_write_text

MAX_LINE_BYTES = 8 << 20


def read_jsonl(path: str | Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for every non-blank line of a JSONL file.

    Raises:
        InputError: the file is missing, not UTF-8, a line is not a JSON object, or a line is too long.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=path)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if len(raw) > max_line_bytes:
                raise InputError(
                    f"line is {len(raw)} bytes, over the {max_line_bytes}-byte limit", file=path, line=number
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"not valid UTF-8 ({exc.reason} at byte {exc.start})", file=path, line=number
                ) from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"malformed JSON: {exc.msg} (column {exc.colno})", file=path, line=number) from None
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, got {type(obj).__name__}", file=path, line=number)
            yield number, obj


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSONL atomically (sorted keys are not imposed: callers choose their order)."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write_text(path, text)
