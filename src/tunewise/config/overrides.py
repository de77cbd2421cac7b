"""Command-line overrides merged into a config section, validated as the section itself is."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tunewise.errors import InputError

Section = TypeVar("Section", bound=BaseModel)


def with_overrides(section: Section, overrides: dict[str, Any], *, field: str) -> Section:
    """``section`` with every override that is not ``None`` applied, validated again.

    Args:
        section: the section as the spec gives it (or its defaults).
        overrides: key -> value, ``None`` meaning "not given on the command line".
        field: where the section sits in ``tunewise.yaml`` (``curation``, ``decide.probes``), to name errors.

    Raises:
        InputError: an override is invalid; the error names ``field`` and the offending key.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    if not given:
        return section
    try:
        return type(section).model_validate({**section.model_dump(), **given})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InputError(error["msg"], field=".".join([field, *(str(p) for p in error["loc"])])) from None
