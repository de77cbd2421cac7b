"""What the rules look at: every probed candidate's figures, the RAG gain, the answer likelihood, the targets."""

from __future__ import annotations

from dataclasses import dataclass, field

from tunewise.config import NeedsSpec
from tunewise.decide.record import AnswerLikelihood, Evidence
from tunewise.persona.record import Curve
from tunewise.records import MetricValue


@dataclass(frozen=True, kw_only=True)
class Measured:
    """One probed candidate's quality and operational figures."""

    name: str
    probe: str
    prompt: str
    self_hosted: bool
    metric: MetricValue
    run_id: str
    operational: dict[str, float] = field(default_factory=dict)
    validity: MetricValue | None = None
    constrained: bool = False


@dataclass(frozen=True)
class PersonaDrift:
    """The persona probe: the best prompt's identifiability curve over a long conversation."""

    candidate: str
    curve: Curve
    margin: float
    conversations: int
    turns: int
    chance: float
    """Identifiability of an answer that says nothing of its persona: 1 / (distractors + 1)."""

    @property
    def takes_it_on(self) -> bool:
        """At turn 1 the persona is identifiable above chance (95% CI)."""
        return self.curve.points[0].value.ci_low > self.chance


@dataclass(frozen=True)
class Gain:
    """A paired difference ``b - a`` of the task metric with its 95% CI."""

    a: str
    b: str
    diff: float
    ci_low: float
    ci_high: float
    n: int
    run_id: str
    paired: bool = True


@dataclass(frozen=True, kw_only=True)
class Facts:
    """Everything the rules look at."""

    kind: str
    metric: str
    threshold: float
    needs: NeedsSpec
    min_gain: float
    candidates: list[Measured]
    has_documents: bool = False
    rag_gain: Gain | None = None
    rag_error: str | None = None
    prompt_error: str | None = None
    self_hosted_only: bool = False
    p95_latency_ms: float | None = None
    cost_per_1m_tokens: float | None = None
    recall_at_k: float | None = None
    likelihood: AnswerLikelihood | None = None
    likelihood_error: str | None = None
    min_nll_gain: float = 0.1
    withheld: list[str] = field(default_factory=list)
    """Hosted candidates not probed because the data may not leave (``targets.self_hosted_only``)."""
    persona_drift: PersonaDrift | None = None
    persona_error: str | None = None

    def best(self, pool: list[Measured] | None = None) -> Measured | None:
        pool = self.candidates if pool is None else pool
        return max(pool, key=lambda candidate: (candidate.metric.value, candidate.metric.ci_low), default=None)

    def meets(self, candidate: Measured) -> bool:
        return candidate.metric.value >= self.threshold

    def within_budget(self, candidate: Measured) -> bool | None:
        """``None`` when a budget is declared but the candidate has no measurement for it."""
        checks = []
        if self.p95_latency_ms is not None:
            p95 = candidate.operational.get("latency_p95_ms")
            checks.append(None if p95 is None else p95 <= self.p95_latency_ms)
        if self.cost_per_1m_tokens is not None:
            usd = candidate.operational.get("usd_per_1m_tokens")
            checks.append(None if usd is None else usd <= self.cost_per_1m_tokens)
        if any(check is None for check in checks):
            return None
        return all(checks)

    def admissible(self, candidate: Measured) -> bool:
        return (candidate.self_hosted or not self.self_hosted_only) and self.within_budget(candidate) is not False

    def evidence(self, candidate: Measured) -> Evidence:
        value = candidate.metric
        return Evidence(
            label=candidate.name,
            metric=self.metric,
            value=value.value,
            ci_low=value.ci_low,
            ci_high=value.ci_high,
            threshold=self.threshold,
            n=value.n,
            run_id=candidate.run_id,
            probe=candidate.probe,
        )

    def budget_evidence(self, candidate: Measured) -> Evidence | None:
        """The candidate's latency (else cost) against its declared budget, when both are known."""
        for budget, figure in ((self.p95_latency_ms, "latency_p95_ms"), (self.cost_per_1m_tokens, "usd_per_1m_tokens")):
            if budget is not None and figure in candidate.operational:
                return Evidence(
                    label=candidate.name,
                    metric=figure,
                    value=candidate.operational[figure],
                    threshold=budget,
                    run_id=candidate.run_id,
                    probe=candidate.probe,
                )
        return None
