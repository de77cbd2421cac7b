"""What a labeller starts from and what they may give: the champion's output as a pre-filled target, and the check
every submitted target passes (``extract``: the schema's fields, ``classify``: a label of the task).

A field's value arrives from the page as text; it is turned back into the type the schema gives that field (a
number, an integer, a boolean, an object or list as JSON, ``null`` for an empty box) before the schema is checked.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from tunewise.config import Project
from tunewise.errors import InputError
from tunewise.metrics.classify import map_label
from tunewise.metrics.extract import extract_json_object
from tunewise.metrics.normalize import is_empty


def schema_fields(project: Project) -> list[str]:
    """The fields an ``extract`` labeller fills: the output schema's ``properties``, in order."""
    schema = project.output_schema or {}
    return list((schema.get("properties") or {}).keys())


def read_output(project: Project, output: str | None) -> tuple[Any, str | None]:
    """The champion's output as a target to pre-fill, and why it is invalid (``None`` when it is not).

    Returns:
        ``extract``: ``({field: value or None}, problem)``; ``classify``: ``(label or None, problem)``; other kinds:
        ``(text, None)``. No output at all gives an empty pre-fill and ``None`` (nothing to judge).
    """
    kind = project.spec.task.kind
    if kind == "extract":
        fields = schema_fields(project)
        if output is None:
            return dict.fromkeys(fields), None
        parsed = extract_json_object(output)
        if parsed is None:
            return dict.fromkeys(fields), "not JSON"
        names = fields or list(parsed)
        prefill = {name: parsed.get(name) for name in names}
        if project.output_schema is not None:
            error = next(iter(jsonschema.Draft202012Validator(project.output_schema).iter_errors(parsed)), None)
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                return prefill, f"schema-invalid ({where})"
        if names and all(is_empty(prefill[name]) for name in names):
            return prefill, "all fields null"
        return prefill, None
    if kind == "classify":
        if output is None:
            return None, None
        label = map_label(output, project.labels or [])
        return label, None if label is not None else "not a label"
    return output or "", None


def null_fields(project: Project, prefill: Any) -> list[str]:
    """The fields of an ``extract`` pre-fill that are null or empty."""
    if project.spec.task.kind != "extract" or not isinstance(prefill, dict):
        return []
    return [name for name, value in prefill.items() if is_empty(value)]


def check_target(project: Project, target: Any) -> Any:
    """The submitted target, typed and checked; raise naming the field that is wrong.

    Raises:
        InputError: ``field`` names the offending field (``target.<name>`` for ``extract``, ``target`` otherwise).
    """
    kind = project.spec.task.kind
    if kind == "extract":
        return _check_fields(project, target)
    if kind == "classify":
        labels = project.labels or []
        if not isinstance(target, str) or target not in labels:
            raise InputError(f"{target!r} is not a label of the task (labels: {', '.join(labels)})", field="target")
        return target
    if not isinstance(target, str) or not target.strip():
        raise InputError("the answer must be non-empty text", field="target")
    return target


def _check_fields(project: Project, target: Any) -> dict[str, Any]:
    if not isinstance(target, dict):
        raise InputError(f"expected an object of fields, got {type(target).__name__}", field="target")
    fields = schema_fields(project)
    if fields:
        unknown = [name for name in target if name not in fields]
        if unknown:
            raise InputError(
                f"not a field of the output schema (fields: {', '.join(fields)})", field=f"target.{unknown[0]}"
            )
        missing = [name for name in fields if name not in target]
        if missing:
            raise InputError("missing: give a value or leave it empty", field=f"target.{missing[0]}")
    properties = (project.output_schema or {}).get("properties") or {}
    typed = {name: _typed(value, properties.get(name) or {}, name) for name, value in target.items()}
    if project.output_schema is not None:
        validator = jsonschema.Draft202012Validator(project.output_schema)
        error = next(iter(sorted(validator.iter_errors(typed), key=lambda e: list(e.absolute_path))), None)
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)
            raise InputError(error.message, field=f"target.{where}" if where else "target")
    return typed


def _types(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    options = schema.get("anyOf") or schema.get("oneOf") or []
    return [t for option in options if isinstance(option, dict) for t in _types(option)]


def _typed(value: Any, schema: dict[str, Any], name: str) -> Any:
    """A field's text from the page as the type its schema names (values already typed pass unchanged)."""
    if not isinstance(value, str):
        return value
    types = _types(schema)
    text = value.strip()
    if text == "" and ("null" in types or not types or "string" not in types):
        return None
    if "string" in types or not types:
        return value
    if "integer" in types:
        try:
            return int(text)
        except ValueError:
            pass
    if "number" in types:
        try:
            number = float(text.replace(",", ""))
            return int(number) if number.is_integer() and "." not in text else number
        except ValueError:
            pass
    if "boolean" in types and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if {"object", "array"} & set(types):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise InputError("expected JSON (an object or a list)", field=f"target.{name}") from None
    raise InputError(f"expected {' or '.join(types)}, got {value!r}", field=f"target.{name}")
