"""Plain typed records: the only things that cross stage boundaries.

Every record is a frozen dataclass deriving from :class:`Record`, so it round-trips through JSON on disk with no
hand-written conversion: ``Record.from_dict(record.to_dict()) == record`` for nested records, lists, dicts, tuples,
optional fields and paths alike.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

SCHEMA_VERSION = 1

Message = dict[str, str]
"""One chat turn in OpenAI form: ``{"role": "system" | "user" | "assistant", "content": str}``."""


class Record:
    """Base of every record: ``to_dict`` gives JSON-ready data, ``from_dict`` rebuilds the record from it."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return _build(cls, data)  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _build(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    return cls(**{name: _coerce(hints[name], value) for name, value in data.items()})


def _coerce(hint: Any, value: Any) -> Any:
    """Turn JSON data back into the type ``hint`` names (records, lists, dicts, tuples, paths, optionals)."""
    if value is None or hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        for option in options:
            if _accepts(option, value):
                return _coerce(option, value)
        return value
    if origin is typing.Literal:
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else _build(hint, value)
    if hint is Path:
        return Path(value)
    if origin is list:
        return [_coerce(args[0], item) for item in value] if args else list(value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], item) for item in value)
        return tuple(_coerce(a, item) for a, item in zip(args, value, strict=True)) if args else tuple(value)
    if origin is dict:
        return {key: _coerce(args[1], item) for key, item in value.items()} if args else dict(value)
    return value


def _accepts(hint: Any, value: Any) -> bool:
    """Whether JSON ``value`` can be the serialised form of ``hint`` (to pick a member of a union)."""
    origin = typing.get_origin(hint) or hint
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(value, dict | hint)
    if origin in (list, tuple):
        return isinstance(value, list | tuple)
    if origin is dict:
        return isinstance(value, dict)
    if hint is Path:
        return isinstance(value, str | Path)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    return not isinstance(origin, type) or isinstance(value, origin)


@dataclass(frozen=True)
class Example(Record):
    """One task instance: the conversation the model sees and the target it should produce.

    ``messages`` holds the input turns only (no final assistant answer). ``target`` is a dict for ``extract``,
    a label string for ``classify``, a string for ``generate``/``chat``. ``source`` is ``file:line``.
    """

    id: str
    messages: list[Message]
    target: Any
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion(Record):
    """What a backend returns for one conversation."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    finish_reason: str = "stop"
    """``stop`` (end of turn) or ``length`` (cut by ``max_new_tokens``)."""
    tokens_estimated: bool = False
    """The token counts are an estimate (an endpoint that returned no ``usage``), not the model's tokenizer."""


@dataclass(frozen=True)
class Prediction(Record):
    """One candidate's answer to one example, with the per-example scores the metrics computed."""

    id: str
    candidate: str
    output: str
    parsed: Any
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    scores: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricValue(Record):
    """A metric with its 95% bootstrap confidence interval over ``n`` examples."""

    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class PairedComparison(Record):
    """Candidate ``b`` minus candidate ``a`` on the same examples, with a paired test."""

    metric: str
    a: str
    b: str
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    n: int


@dataclass(frozen=True)
class CandidateResult(Record):
    """Quality metrics (with CIs), per-field breakdown and operational figures of one candidate."""

    name: str
    model: str
    prompt: str
    metrics: dict[str, MetricValue]
    per_field: dict[str, MetricValue] = field(default_factory=dict)
    operational: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalSummary(Record):
    """The result of one ``tunewise eval`` run: every candidate on one split, and their paired comparisons."""

    run_id: str
    task_kind: str
    primary_metric: str
    split: str
    data_file: str
    data_sha256: str
    n_examples: int
    candidates: list[CandidateResult]
    comparisons: list[PairedComparison]
    created_at: str
    mlflow_run_id: str | None = None
    egress_guard: bool = False
    """Whether the zero-egress guard was on during the run (``targets.self_hosted_only``, ``--no-egress``)."""
    schema_version: int = SCHEMA_VERSION

    def candidate(self, name: str) -> CandidateResult:
        for result in self.candidates:
            if result.name == name:
                return result
        raise KeyError(name)
