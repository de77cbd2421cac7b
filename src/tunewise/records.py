"""Plain typed records: the only things that cross stage boundaries.

Every record is a frozen dataclass with ``to_dict`` / ``from_dict`` so it round-trips through JSON on disk.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1

Message = dict[str, str]
"""One chat turn in OpenAI form: ``{"role": "system" | "user" | "assistant", "content": str}``."""


def _to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


@dataclass(frozen=True)
class Example:
    """One task instance: the conversation the model sees and the target it should produce.

    ``messages`` holds the input turns only (no final assistant answer). ``target`` is a dict for ``extract``,
    a label string for ``classify``, a string for ``generate``/``chat``. ``source`` is ``file:line``.
    """

    id: str
    messages: list[Message]
    target: Any
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Example:
        return cls(**data)


@dataclass(frozen=True)
class Completion:
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
class Prediction:
    """One candidate's answer to one example, with the per-example scores the metrics computed."""

    id: str
    candidate: str
    output: str
    parsed: Any
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    scores: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        return cls(**data)


@dataclass(frozen=True)
class MetricValue:
    """A metric with its 95% bootstrap confidence interval over ``n`` examples."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True)
class PairedComparison:
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

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True)
class CandidateResult:
    """Quality metrics (with CIs), per-field breakdown and operational figures of one candidate."""

    name: str
    model: str
    prompt: str
    metrics: dict[str, MetricValue]
    per_field: dict[str, MetricValue] = field(default_factory=dict)
    operational: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateResult:
        return cls(
            name=data["name"],
            model=data["model"],
            prompt=data["prompt"],
            metrics={k: MetricValue(**v) for k, v in data["metrics"].items()},
            per_field={k: MetricValue(**v) for k, v in data.get("per_field", {}).items()},
            operational=dict(data.get("operational", {})),
        )


@dataclass(frozen=True)
class EvalSummary:
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
    schema_version: int = SCHEMA_VERSION

    def candidate(self, name: str) -> CandidateResult:
        for result in self.candidates:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalSummary:
        data = dict(data)
        data["candidates"] = [CandidateResult.from_dict(c) for c in data["candidates"]]
        data["comparisons"] = [PairedComparison(**c) for c in data["comparisons"]]
        return cls(**data)
