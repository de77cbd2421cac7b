"""Pydantic validation errors as :class:`InputError`: the file, the line and the key, for every config file."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tunewise.config.base import SpecError
from tunewise.errors import InputError
from tunewise.io.yamlfile import KeyLines, line_of

M = TypeVar("M", bound=BaseModel)


def validate_section(model: type[M], raw: Any, *, path: Path, lines: KeyLines, prefix: tuple[Any, ...] = ()) -> M:
    """``model.model_validate(raw)``, or an :class:`InputError` naming ``path``, the key's line and the key.

    ``prefix`` is where ``raw`` sits in the file (``("train",)`` for a ``train:`` section read on its own).
    """
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise as_input_error(exc, model, path=path, lines=lines, prefix=prefix) from None


def as_input_error(
    exc: ValidationError, model: type[BaseModel], *, path: Path, lines: KeyLines, prefix: tuple[Any, ...] = ()
) -> InputError:
    """The first error of ``exc`` as one line a user can act on."""
    error = exc.errors()[0]
    cause = (error.get("ctx") or {}).get("error")
    loc = cause.loc if isinstance(cause, SpecError) else _yaml_loc(tuple(error["loc"]))
    key = ".".join(str(p) for p in (*prefix, *loc)) or "(top level)"
    line = line_of(lines, (*prefix, *loc))
    if error["type"] == "extra_forbidden":
        parent = model_at(model, loc[:-1])
        expected = ", ".join(parent.model_fields) if parent else "a known key"
        problem = f"unknown key (expected one of: {expected})"
    else:
        # A validator's own message, without pydantic's "Value error, " prefix.
        problem = str(cause) if isinstance(cause, ValueError) else error["msg"]
        if error["type"] not in ("value_error", "missing") and "input" in error:
            problem += f" (got {error['input']!r})"
    return InputError(problem, file=path, line=line, field=key)


def _yaml_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # A discriminated union puts its variant tag into the location (params.lr.loguniform.low); that is no YAML key.
    if len(loc) >= 3 and loc[0] == "params" and loc[2] in ("uniform", "loguniform", "int", "categorical"):
        return loc[:2] + loc[3:]
    return loc


def model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model reached by the key path ``loc`` from ``model`` (list indexes and dict keys stepped over)."""
    current: type[BaseModel] | None = model
    keyed = False
    for part in loc:
        if isinstance(part, int) or keyed:
            keyed = False
            continue
        field = current.model_fields.get(part) if current is not None else None
        if field is None:
            return None
        keyed = typing.get_origin(field.annotation) is dict
        current = _model_in(field.annotation)
    return None if keyed else current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel named by a field annotation, looking inside ``X | None``, ``list[X]`` and ``dict[str, X]``."""
    pending = [annotation]
    while pending:
        current = pending.pop(0)
        if isinstance(current, type) and issubclass(current, BaseModel):
            return current
        pending.extend(typing.get_args(current))
    return None
