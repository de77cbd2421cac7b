"""Read data files tolerantly: every bad line becomes a ``file:line: field: problem`` entry, none stops the read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from tunewise.config import Project
from tunewise.errors import InputError, TunewiseError
from tunewise.examples import row_to_example
from tunewise.io.jsonl import MAX_LINE_BYTES
from tunewise.records import Example


class DataProblems(TunewiseError):
    """One or more bad rows; ``problems`` holds every one, each formatted ``file:line: field: problem``."""

    def __init__(self, problems: list[InputError]) -> None:
        self.problems = problems
        shown = "\n".join(p.format() for p in problems[:50])
        more = f"\n... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} problem(s) in the data:\n{shown}{more}")


@dataclass
class LoadedFile:
    """The rows of one file that parsed, the examples built from them, and every problem found."""

    path: Path
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    example_rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[InputError] = field(default_factory=list)
    blank_lines: int = 0


def read_rows(path: Path, loaded: LoadedFile, *, max_line_bytes: int = MAX_LINE_BYTES) -> None:
    """Fill ``loaded.rows`` with the JSON objects of a JSONL file and ``loaded.problems`` with every bad line."""
    if not path.is_file():
        loaded.problems.append(InputError("file not found", file=path))
        return
    if path.stat().st_size == 0:
        loaded.problems.append(InputError("file is empty", file=path))
        return
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if len(raw) > max_line_bytes:
                loaded.problems.append(
                    InputError(
                        f"line is {len(raw)} bytes, over the {max_line_bytes}-byte limit", file=path, line=number
                    )
                )
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                loaded.problems.append(
                    InputError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", file=path, line=number)
                )
                continue
            if not text.strip():
                loaded.blank_lines += 1
                continue
            try:
                obj = json.loads(text.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                loaded.problems.append(
                    InputError(f"malformed JSON: {exc.msg} (column {exc.colno})", file=path, line=number)
                )
                continue
            if not isinstance(obj, dict):
                loaded.problems.append(
                    InputError(f"expected a JSON object, got {type(obj).__name__}", file=path, line=number)
                )
                continue
            loaded.rows.append((number, obj))
    if not loaded.rows and not loaded.problems:
        loaded.problems.append(InputError("no rows in file (only blank lines)", file=path))


def validate_target(project: Project, example: Example, path: Path, line: int) -> list[InputError]:
    """Schema violations of an extraction target, one entry per violation (field = target path)."""
    if project.output_schema is None or project.spec.task.kind != "extract":
        return []
    validator = jsonschema.Draft202012Validator(project.output_schema)
    base = project.spec.data.target_field
    out = []
    for error in sorted(validator.iter_errors(example.target), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path)
        out.append(
            InputError(
                f"schema violation: {error.message}", file=path, line=line, field=f"{base}.{where}" if where else base
            )
        )
    return out


def load_file(project: Project, path: str | Path, *, annotated: bool = False) -> LoadedFile:
    """Read one data file into examples, collecting every problem instead of stopping at the first.

    Args:
        annotated: rows are annotations, so an id may repeat (once per annotator).
    """
    path = Path(path)
    loaded = LoadedFile(path)
    read_rows(path, loaded)
    seen: dict[str, int] = {}
    id_field = project.spec.data.id_field
    for line, row in loaded.rows:
        try:
            example = row_to_example(project, row, path, line)
        except InputError as exc:
            loaded.problems.append(exc)
            continue
        schema_problems = validate_target(project, example, path, line)
        if schema_problems:
            loaded.problems.extend(schema_problems)
            continue
        if not annotated and example.id in seen:
            loaded.problems.append(
                InputError(
                    f"duplicate id {example.id!r} (first on line {seen[example.id]})",
                    file=path,
                    line=line,
                    field=id_field,
                )
            )
            continue
        seen.setdefault(example.id, line)
        loaded.examples.append(example)
        loaded.example_rows.append(row)
    return loaded
