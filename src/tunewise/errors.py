"""Errors a user can act on: each names the file, line and field (or URL and status) at fault."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

# Credential shapes an endpoint may echo back: bearer tokens, OpenAI-style keys, ``key=value`` secrets, URL userinfo.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
    (re.compile(r"\b(Basic)\s+[A-Za-z0-9+/]{8,}=*"), r"\1 ***"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "sk-***"),
    (
        re.compile(r"(?i)\b(api[_-]?key|access[_-]?token|password|secret)([\"']?\s*[:=]\s*[\"']?)[^\"'\s,;&}]+"),
        r"\1\2***",
    ),
    (re.compile(r"(://)[^/@\s:]+:[^/@\s]+@"), r"\1***@"),
)


def redact_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with each known secret value and anything shaped like a credential replaced by ``***``.

    Args:
        secrets: values to remove wherever they appear (an API key read from its environment variable).
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


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

    def __init__(
        self, problem: str, *, url: str | None = None, status: int | None = None, secrets: Iterable[str | None] = ()
    ) -> None:
        """``secrets``: values (an API key) to redact from the message, besides anything shaped like a credential."""
        self.url = redact_secrets(url, secrets) if url is not None else None
        self.status = status
        parts = [p for p in (self.url, f"HTTP {status}" if status is not None else None) if p]
        prefix = ": ".join(parts)
        problem = redact_secrets(problem, secrets)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)
