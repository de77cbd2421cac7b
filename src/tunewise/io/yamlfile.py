"""YAML files whose errors can name a line: the parsed mapping plus the line of every key path.

tunewise's YAML files (the spec, training and sweep configs) are plain data: aliases are refused, because a few
nested ones expand a 2 KB file into gigabytes, and a key given twice is an error instead of the last one winning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tunewise.errors import InputError
from tunewise.io.text import read_text_file

KeyLines = dict[tuple[Any, ...], int]


class _AliasFound(Exception):
    def __init__(self, event: yaml.AliasEvent) -> None:
        super().__init__(event.anchor)
        self.anchor = event.anchor
        self.line = event.start_mark.line + 1


class _PlainDataLoader(yaml.SafeLoader):
    """A safe loader that stops at the first alias, before anything is expanded."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            raise _AliasFound(self.peek_event())
        return super().compose_node(parent, index)


def read_yaml_mapping(path: str | Path, *, what: str = "file") -> tuple[dict[str, Any], KeyLines]:
    """Parse a YAML file that must hold a mapping; return it with the 1-based line of every key path.

    Raises:
        InputError: ``<what> not found``, text that is not UTF-8, malformed YAML, an alias, a duplicated key (each
            with its line), or a top level that is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found", file=path)
    text = read_text_file(path)
    loader = _PlainDataLoader(text)
    try:
        node = loader.get_single_node()
        lines = key_lines(node, file=path)
        raw = loader.construct_document(node) if node is not None else None
    except _AliasFound as alias:
        raise InputError(
            f"YAML aliases are not supported (*{alias.anchor}): write the value out in full",
            file=path,
            line=alias.line,
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"malformed YAML: {getattr(exc, 'problem', exc)}", file=path, line=mark.line + 1 if mark else None
        ) from None
    except RecursionError:
        raise InputError("malformed YAML: nested too deeply", file=path) from None
    finally:
        loader.dispose()
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError("expected a mapping at the top level", file=path)
    return raw, lines


def key_lines(node: yaml.Node | None, prefix: tuple[Any, ...] = (), *, file: str | Path | None = None) -> KeyLines:
    """Map every key path in a composed YAML document to its 1-based line.

    Raises:
        InputError: a mapping holds the same key twice (naming both lines).
    """
    lines: KeyLines = {}
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[tuple[str, Any], int] = {}
        for key, value in node.value:
            path = (*prefix, key.value)
            line = key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode):
                if (key.tag, key.value) in first_seen:
                    first = first_seen[key.tag, key.value]
                    field = ".".join(str(p) for p in path)
                    raise InputError(f"duplicate key (first on line {first})", file=file, line=line, field=field)
                first_seen[key.tag, key.value] = line
            lines[path] = line
            lines.update(key_lines(value, path, file=file))
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            path = (*prefix, index)
            lines[path] = value.start_mark.line + 1
            lines.update(key_lines(value, path, file=file))
    return lines


def line_of(lines: KeyLines, loc: tuple[Any, ...]) -> int | None:
    """The line of ``loc``, or of its nearest enclosing key that has one."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
