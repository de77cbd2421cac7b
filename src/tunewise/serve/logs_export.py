"""The request log as chat-format JSONL that ``tunewise data prepare`` accepts: served traffic becomes training data.

Each exported row is ``{"id", "messages", "model", "model_version", "created", "json_valid", "schema_valid"}`` where
``messages`` is the request's turns followed by the served output as the final assistant turn (the target).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tunewise.errors import InputError
from tunewise.examples import ROLES
from tunewise.io.jsonl import write_jsonl
from tunewise.records import Record
from tunewise.serve.requestlog import LoggedRequest, RequestLog

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True, kw_only=True)
class LogExport(Record):
    """What an export wrote: the file, the rows written, and the rows skipped by reason."""

    path: Path
    written: int
    skipped: dict[str, int] = field(default_factory=dict)
    """``error`` (failed request), ``empty_output``, ``unsupported_messages`` (a role or content the data stage
    cannot read); with ``only_valid`` also ``invalid_json``, ``invalid_schema`` and ``truncated`` (cut by the token
    limit)."""

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def export_logs(
    log_path: str | Path,
    out_path: str | Path,
    *,
    since: float | None = None,
    until: float | None = None,
    model: str | None = None,
    only_valid: bool = True,
) -> LogExport:
    """Write the logged requests (``since <= created < until``, unix times) as chat JSONL, atomically.

    Args:
        model: only requests for this served name.
        only_valid: also skip outputs known to be bad: invalid JSON, schema violations, truncated outputs.

    Returns:
        The path, the number of rows written and the skipped rows by reason.

    Raises:
        InputError: the log is missing or not a request log.
    """
    log_path = Path(log_path)
    if not log_path.is_file():
        raise InputError("no request log here (has `tunewise serve` run?)", file=log_path)
    skipped: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    with RequestLog(log_path) as log:
        for entry in log.entries(since=since, until=until, model=model):
            reason = _skip_reason(entry, only_valid)
            if reason is None:
                rows.append(_row(entry))
            else:
                skipped[reason] += 1
    write_jsonl(out_path, rows)
    return LogExport(path=Path(out_path), written=len(rows), skipped=dict(sorted(skipped.items())))


def _skip_reason(entry: LoggedRequest, only_valid: bool) -> str | None:
    if entry.error is not None or entry.status >= 400:
        return "error"
    if not entry.output.strip():
        return "empty_output"
    if not entry.messages or not all(
        isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in entry.messages
    ):
        return "unsupported_messages"
    if only_valid:
        if entry.json_valid is False:
            return "invalid_json"
        if entry.schema_valid is False:
            return "invalid_schema"
        if entry.finish_reason == "length":
            return "truncated"
    return None


def _row(entry: LoggedRequest) -> dict[str, Any]:
    messages = [{"role": m["role"], "content": m["content"]} for m in entry.messages]
    return {
        "id": entry.request_id,
        "messages": [*messages, {"role": "assistant", "content": entry.output}],
        "model": entry.model,
        "model_version": entry.model_version,
        "created": datetime.fromtimestamp(entry.created, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "json_valid": entry.json_valid,
        "schema_valid": entry.schema_valid,
    }


def parse_time(value: str, *, flag: str, now: float | None = None) -> float:
    """A ``--since``/``--until`` value as unix time: an ISO date or date-time, or a duration ago (``7d``).

    A date or date-time without a UTC offset is local time; durations take ``s``, ``m``, ``h``, ``d`` or ``w``.

    Args:
        flag: the option's name, for the error.
        now: the current unix time (default: now).

    Raises:
        InputError: ``value`` is neither, naming ``flag``.
    """
    match = _DURATION.match(value)
    if match:
        current = datetime.now(UTC).timestamp() if now is None else now
        return current - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(
            f"expected an ISO date or date-time (2025-01-31, 2025-01-31T14:00Z) or a duration ago (30m, 12h, 7d), "
            f"got {value!r}",
            field=flag,
        ) from None
    return moment.timestamp()  # a naive moment is read as local time
