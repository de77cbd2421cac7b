"""The one strict base of every ``tunewise.yaml`` section: unknown keys are errors, loaded values are frozen."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpecError(ValueError):
    """A cross-section check that failed at ``loc`` (a key path such as ``("targets", "metric")``).

    Raised inside a project-level validator so that the error names the key it is about, not the whole spec.
    """

    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
