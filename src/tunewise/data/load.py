"""Read data files tolerantly: every bad line becomes a ``file:line: field: problem`` entry, none stops the read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.config import Project
from tunewise.errors import InputError, TunewiseError
from tunewise.examples import row_to_example, validate_target
from tunewise.io.jsonl import MAX_LINE_BYTES, check_data_file, parse_jsonl_line
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
    try:
        check_data_file(path)
    except InputError as exc:
        loaded.problems.append(exc)
        return
    if path.stat().st_size == 0:
        loaded.problems.append(InputError("file is empty", file=path))
        return
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                obj = parse_jsonl_line(raw, file=path, line=number, max_line_bytes=max_line_bytes)
            except InputError as exc:
                loaded.problems.append(exc)
                continue
            if obj is None:
                loaded.blank_lines += 1
            else:
                loaded.rows.append((number, obj))
    if not loaded.rows and not loaded.problems:
        loaded.problems.append(InputError("no rows in file (only blank lines)", file=path))


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
