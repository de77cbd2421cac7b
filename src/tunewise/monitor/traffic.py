"""Production traffic as rows to compare: the serve request log, or any JSONL of inputs with timestamps.

Only the rows answered by one model version are kept: a log that spans a promotion holds two models' outputs, and
mixing them would show the change of model as drift. The rows of other versions are counted, never compared.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tunewise.config import Project
from tunewise.errors import InputError
from tunewise.examples import row_to_input
from tunewise.io.jsonl import read_jsonl
from tunewise.models.local import directory_sha256
from tunewise.records import Example, Record
from tunewise.serve.requestlog import LoggedRequest, RequestLog, default_log_path
from tunewise.tracking import local_artifact_path, registered_aliases


@dataclass(frozen=True, kw_only=True)
class TrafficRow(Record):
    """One production input, with what the watched model answered when the source has it."""

    id: str
    created: float
    """Unix time of the request."""
    example: Example
    """The input as the model saw it (``target`` is ``None``; ``meta["group"]`` when the row has a group)."""
    output: str | None = None
    model_version: str | None = None
    json_valid: bool | None = None
    schema_valid: bool | None = None
    finish_reason: str | None = None
    completion_tokens: int | None = None

    @property
    def text(self) -> str:
        """The last user message: what input drift is measured on."""
        return input_text(self.example)


def input_text(example: Example) -> str:
    """The last user message of an example (the reference data's inputs are read the same way)."""
    for message in reversed(example.messages):
        if message["role"] == "user":
            return str(message["content"])
    return ""


@dataclass(frozen=True, kw_only=True)
class Traffic(Record):
    """The rows of one source for one model version, oldest first."""

    source: str
    model: str | None
    model_version: str | None
    """The version compared; ``None`` when the source records none (a JSONL of inputs only)."""
    rows: list[TrafficRow]
    skipped: dict[str, int] = field(default_factory=dict)
    """``other_version`` (answered by another version of the model), ``failed`` (an error status)."""


def current_version(project: Project, model: str) -> str | None:
    """The version (adapter files' SHA-256) that ``model`` names now: an alias, an adapter, or ``None`` if unknown."""
    if "@" in model:
        registered, alias = model.rsplit("@", 1)
        for target in registered_aliases(project):
            if target.model == registered and target.alias == alias:
                directory = local_artifact_path(target.source)
                if directory is not None and directory.is_dir():
                    return directory_sha256(directory)
        return None
    directory = project.state_dir / "adapters" / model
    return directory_sha256(directory) if (directory / "adapter_config.json").is_file() else None


def load_traffic(
    project: Project,
    *,
    source: str | Path | None = None,
    model: str | None = None,
    model_version: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> Traffic:
    """The traffic of ``model`` with ``since <= created < until``.

    Args:
        source: a request log (``.db``) or a JSONL of inputs; default ``monitor.traffic``, else the project's log.
        model: the served name (default ``monitor.model``, else the champion alias).
        model_version: keep this version's rows (default: the version ``model`` names now, else the version of the
            newest row).

    Raises:
        InputError: the source is missing or a JSONL row is malformed (file, line and field).
    """
    spec = project.spec
    model = model or spec.monitor.model or spec.champion
    path = Path(source) if source is not None else _default_source(project)
    if not path.is_file():
        raise InputError(
            "no production traffic here (has `tunewise serve` run, or is monitor.traffic right?)", file=path
        )
    if path.suffix == ".jsonl":
        rows = _jsonl_rows(project, path)
    else:
        with RequestLog(path) as log:
            rows = [_log_row(project, entry) for entry in log.entries(model=model)]
    rows = [r for r in rows if (since is None or r.created >= since) and (until is None or r.created < until)]
    skipped: Counter[str] = Counter()
    kept = []
    for row in rows:
        if row.output is None and row.finish_reason == "error":
            skipped["failed"] += 1
        else:
            kept.append(row)
    versions = {r.model_version for r in kept if r.model_version is not None}
    if model_version is None and versions:
        model_version = current_version(project, model)
        if model_version not in versions:
            model_version = max(kept, key=lambda r: r.created).model_version
    if model_version is not None:
        skipped["other_version"] = sum(1 for r in kept if r.model_version != model_version)
        kept = [r for r in kept if r.model_version == model_version]
    kept.sort(key=lambda r: (r.created, r.id))
    return Traffic(
        source=str(path),
        model=model,
        model_version=model_version,
        rows=kept,
        skipped={k: v for k, v in sorted(skipped.items()) if v},
    )


def _default_source(project: Project) -> Path:
    if project.spec.monitor.traffic:
        return project.declared_file(project.spec.monitor.traffic, ("monitor", "traffic"), what="traffic file")
    return default_log_path(project.state_dir)


def _log_row(project: Project, entry: LoggedRequest) -> TrafficRow:
    failed = entry.error is not None or entry.status >= 400
    messages = [m for m in entry.messages if isinstance(m, dict) and m.get("role") in {"system", "user", "assistant"}]
    example = Example(id=entry.request_id, messages=messages, target=None, source=f"request {entry.request_id}")
    return TrafficRow(
        id=entry.request_id,
        created=entry.created,
        example=example,
        output=None if failed else entry.output,
        model_version=entry.model_version,
        json_valid=entry.json_valid,
        schema_valid=entry.schema_valid,
        finish_reason="error" if failed else entry.finish_reason,
        completion_tokens=entry.completion_tokens,
    )


def _jsonl_rows(project: Project, path: Path) -> list[TrafficRow]:
    rows = []
    for line, raw in read_jsonl(path):
        example, _gold = row_to_input(project, raw, path, line)
        output = raw.get("output")
        if output is not None and not isinstance(output, str):
            output = _json_text(output)
        version = raw.get("model_version")
        if version is not None and not isinstance(version, str):
            raise InputError(
                f"expected a string, got {type(version).__name__}", file=path, line=line, field="model_version"
            )
        rows.append(
            TrafficRow(
                id=example.id,
                created=_created(raw.get("created"), path, line),
                example=example,
                output=output,
                model_version=version,
            )
        )
    return rows


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _created(value: Any, path: Path, line: int) -> float:
    if isinstance(value, bool) or value is None:
        raise InputError("missing timestamp: a unix time or an ISO date-time", file=path, line=line, field="created")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise InputError(f"expected a unix time or an ISO date-time, got {value!r}", file=path, line=line, field="created")
