"""Errors a user can act on: each names the file, line and field (or URL and status) at fault."""

from __future__ import annotations

from pathlib import Path


class TunewiseError(Exception):
    """Base class of every error tunewise raises on purpose; the CLI prints it and exits non-zero."""


class InputError(TunewiseError):
    """Bad user input: a data file, a spec, a schema. Formats as ``file:line: field: problem``."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.problem}"


class BackendError(TunewiseError):
    """A model backend failed: an unreachable endpoint, an HTTP error status, a model that cannot load."""

    def __init__(self, problem: str, *, url: str | None = None, status: int | None = None) -> None:
        self.url = url
        self.status = status
        parts = [p for p in (url, f"HTTP {status}" if status is not None else None) if p]
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)
