"""JSON Lines reading with line-numbered errors, and atomic JSONL writing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tunewise.errors import InputError
from tunewise.io.atomic import atomic_write_text
from tunewise.io.text import BOM, decode_utf8

MAX_LINE_BYTES = 8 << 20


def read_jsonl(path: str | Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for every non-blank line of a JSONL file.

    Raises:
        InputError: the file is missing or a directory, a line is not UTF-8, not a JSON object, or too long.
    """
    path = Path(path)
    check_data_file(path)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            obj = parse_jsonl_line(raw, file=path, line=number, max_line_bytes=max_line_bytes)
            if obj is not None:
                yield number, obj


def check_data_file(path: Path) -> None:
    """Raise unless ``path`` is a file that can be read line by line.

    Raises:
        InputError: ``file not found``, or ``is a directory, not a data file``.
    """
    if path.is_dir():
        raise InputError("is a directory, not a data file", file=path)
    if not path.is_file():
        raise InputError("file not found", file=path)


def parse_jsonl_line(
    raw: bytes, *, file: Path, line: int, max_line_bytes: int = MAX_LINE_BYTES
) -> dict[str, Any] | None:
    """One line of a JSONL file as a JSON object, or ``None`` for a blank line.

    The one line parser behind every JSONL reader, so that ``data check`` and ``eval`` report a bad line alike:
    a BOM is accepted at the start of the file, and a JSON error names its 1-based column on the line.

    Raises:
        InputError: the line is too long, not UTF-8, not JSON, or not an object (naming ``file`` and ``line``).
    """
    if len(raw) > max_line_bytes:
        raise InputError(f"line is {len(raw)} bytes, over the {max_line_bytes}-byte limit", file=file, line=line)
    if line > 1 and raw.startswith(BOM):
        raise InputError("a byte order mark (U+FEFF) inside the file, not at its start", file=file, line=line)
    text = decode_utf8(raw, file=file, line=line).rstrip("\r\n")
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg} (column {exc.colno})", file=file, line=line) from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", file=file, line=line)
    return obj


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSONL atomically (sorted keys are not imposed: callers choose their order)."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write_text(path, text)
