"""YAML files whose errors can name a line: the parsed mapping plus the line of every key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tunewise.errors import InputError

KeyLines = dict[tuple[Any, ...], int]


def read_yaml_mapping(path: str | Path, *, what: str = "file") -> tuple[dict[str, Any], KeyLines]:
    """Parse a YAML file that must hold a mapping; return it with the 1-based line of every key path.

    Raises:
        InputError: ``<what> not found``, malformed YAML (with its line), or a top level that is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found", file=path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
        lines = key_lines(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"malformed YAML: {getattr(exc, 'problem', exc)}", file=path, line=mark.line + 1 if mark else None
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError("expected a mapping at the top level", file=path)
    return raw, lines


def key_lines(node: yaml.Node | None, prefix: tuple[Any, ...] = ()) -> KeyLines:
    """Map every key path in a composed YAML document to its 1-based line."""
    lines: KeyLines = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            lines[path] = key.start_mark.line + 1
            lines.update(key_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            path = (*prefix, index)
            lines[path] = value.start_mark.line + 1
            lines.update(key_lines(value, path))
    return lines


def line_of(lines: KeyLines, loc: tuple[Any, ...]) -> int | None:
    """The line of ``loc``, or of its nearest enclosing key that has one."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
