"""The verdict step: each node's rule applied to the facts, giving an answer and the figures it rests on, no words.

Every verdict names its ``case`` (which branch of the rule decided) and carries what the explanation step
(:mod:`tunewise.decide.reasons`) needs to say why. Pure functions of :class:`~tunewise.decide.facts.Facts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from tunewise.decide.facts import Facts, Gain, Measured, PersonaDrift
from tunewise.decide.record import AnswerLikelihood, AnswerValue, Evidence


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """A node's answer and its evidence, before it is put in words."""

    node: ClassVar[str]
    answer: AnswerValue
    evidence: list[Evidence] = field(default_factory=list)
    declared: bool = False
    """Answered from the spec's declarations rather than from measurements."""
    settled: bool = True
    """False when the answer rests on a CI that still includes the threshold."""
    failure: str | None = None
    """The error of the failed probe that left the node ``unknown`` (never set for other answers)."""


GainReading = Literal["clear", "ci_includes_zero", "below_min_gain"]


@dataclass(frozen=True, kw_only=True)
class TaskGain:
    """The best prompt with the retrieved passages against the same prompt without (``gain.b - gain.a``), on the task
    metric."""

    gain: Gain
    metric: str
    threshold: float
    min_gain: float
    reading: GainReading
    """``clear``: the CI excludes 0 and the gain reaches ``min_gain``; otherwise which of the two it fails."""
    rag: Measured | None
    rag_meets_target: bool

    @property
    def clears(self) -> bool:
        return self.reading == "clear"


@dataclass(frozen=True, kw_only=True)
class LikelihoodGain:
    """The answer-likelihood probe: how much likelier the retrieved passages make the reference answers."""

    likelihood: AnswerLikelihood
    min_nll_gain: float
    clears: bool
    """The gain over placebo passages has a CI above 0 and reaches ``min_nll_gain``."""
    passages_hurt: bool
    """Any passage makes the reference answers less likely than closed-book (CI entirely below 0)."""


KnowledgeCase = Literal[
    "declared_no",
    "no_documents",
    "declared_yes",
    "not_measured",
    "rag_closes_gap",
    "facts_unused",
    "declared_measured",
    "no_gap",
]


@dataclass(frozen=True, kw_only=True)
class KnowledgeVerdict(Verdict):
    """Does the model need domain facts it lacks? Read from the RAG gain and the answer likelihood."""

    node: ClassVar[str] = "knowledge"
    case: KnowledgeCase
    rag_error: str | None = None
    task: TaskGain | None = None
    recall_at_k: float | None = None
    likelihood: LikelihoodGain | None = None
    likelihood_error: str | None = None


def knowledge_verdict(facts: Facts) -> KnowledgeVerdict:
    """Does the model lack domain facts? Yes when RAG gains on the task, or the passages make the answers likelier."""
    declared = facts.needs.domain_knowledge
    if declared is False:
        return KnowledgeVerdict(case="declared_no", answer="no", declared=True)
    if declared == "auto" and not facts.has_documents:
        return KnowledgeVerdict(case="no_documents", answer="no")
    if facts.rag_gain is None and facts.likelihood is None:
        if declared is True:
            return KnowledgeVerdict(case="declared_yes", answer="yes", declared=True)
        failure = facts.rag_error or facts.likelihood_error
        return KnowledgeVerdict(case="not_measured", answer="unknown", rag_error=facts.rag_error, failure=failure)
    evidence: list[Evidence] = []
    task: TaskGain | None = None
    likelihood: LikelihoodGain | None = None
    if facts.rag_gain is not None:
        task = _task_gain(facts, facts.rag_gain)
        evidence += [facts.evidence(c) for c in facts.candidates if c.name in (task.gain.a, task.gain.b)]
        evidence.append(_gain_evidence(facts, task.gain))
    if facts.likelihood is not None:
        likelihood = _likelihood_gain(facts, facts.likelihood)
        evidence += _likelihood_evidence(facts.likelihood, facts.min_nll_gain)
    if task is not None and task.clears:
        case: KnowledgeCase = "rag_closes_gap"
    elif likelihood is not None and likelihood.clears:
        case = "facts_unused"
    elif declared is True:
        case = "declared_measured"
    else:
        case = "no_gap"
    return KnowledgeVerdict(
        case=case,
        answer="no" if case == "no_gap" else "yes",
        evidence=evidence,
        declared=case == "declared_measured",
        rag_error=facts.rag_error,
        task=task,
        recall_at_k=facts.recall_at_k,
        likelihood=likelihood,
        likelihood_error=facts.likelihood_error,
    )


def _task_gain(facts: Facts, gain: Gain) -> TaskGain:
    rag = next((c for c in facts.candidates if c.name == gain.b), None)
    if gain.ci_low > 0 and gain.diff >= facts.min_gain:
        reading: GainReading = "clear"
    else:
        reading = "ci_includes_zero" if gain.ci_low <= 0 else "below_min_gain"
    return TaskGain(
        gain=gain,
        metric=facts.metric,
        threshold=facts.threshold,
        min_gain=facts.min_gain,
        reading=reading,
        rag=rag,
        rag_meets_target=rag is not None and facts.meets(rag),
    )


def _gain_evidence(facts: Facts, gain: Gain) -> Evidence:
    return Evidence(
        label=f"{gain.a} with passages vs {gain.a} without",
        metric=facts.metric,
        value=gain.diff,
        ci_low=gain.ci_low,
        ci_high=gain.ci_high,
        threshold=facts.min_gain,
        n=gain.n,
        run_id=gain.run_id,
        probe="rag",
    )


def _likelihood_gain(facts: Facts, likelihood: AnswerLikelihood) -> LikelihoodGain:
    # The placebo is the control: any passage changes the prompt's length and register (a small model may stop
    # answering in the expected format), so only the difference to other documents isolates the facts.
    vs_placebo = likelihood.gain_vs_placebo
    return LikelihoodGain(
        likelihood=likelihood,
        min_nll_gain=facts.min_nll_gain,
        clears=vs_placebo.ci_low > 0 and vs_placebo.value >= facts.min_nll_gain,
        passages_hurt=likelihood.gain_vs_closed_book.ci_high < 0,
    )


def _likelihood_evidence(likelihood: AnswerLikelihood, min_nll_gain: float) -> list[Evidence]:
    rows = (
        ("retrieved vs placebo passages", likelihood.gain_vs_placebo, min_nll_gain),
        ("retrieved vs closed book", likelihood.gain_vs_closed_book, None),
    )
    return [
        Evidence(
            label=label,
            metric="answer_nll_gain",
            value=gain.value,
            ci_low=gain.ci_low,
            ci_high=gain.ci_high,
            threshold=threshold,
            n=gain.n,
            probe="answer likelihood",
        )
        for label, gain, threshold in rows
    ]


@dataclass(frozen=True, kw_only=True)
class StructuredOutputVerdict(Verdict):
    """Can the best candidate produce the schema / label set well enough?"""

    node: ClassVar[str] = "structured_output"
    case: Literal["free_text", "not_measured", "cannot_produce", "meets_target", "straddles_target"]
    kind: str
    metric: str
    threshold: float
    best: Measured | None = None
    constrained: Measured | None = None
    """The constrained-decoding candidate, when one was probed."""
    prompt_error: str | None = None


def structured_output_verdict(facts: Facts) -> StructuredOutputVerdict:
    """Can the best candidate, constrained decoding included, produce the schema / label set well enough?"""
    kind, metric, threshold = facts.kind, facts.metric, facts.threshold
    if kind not in ("extract", "classify"):
        return StructuredOutputVerdict(case="free_text", answer="no", kind=kind, metric=metric, threshold=threshold)
    best = facts.best()
    if best is None:
        return StructuredOutputVerdict(
            case="not_measured",
            answer="unknown",
            kind=kind,
            metric=metric,
            threshold=threshold,
            prompt_error=facts.prompt_error,
            failure=facts.prompt_error,
        )
    evidence = [facts.evidence(c) for c in sorted(facts.candidates, key=lambda c: -c.metric.value)]
    constrained = next((c for c in facts.candidates if c.constrained), None)
    if best.metric.ci_high < threshold:
        return StructuredOutputVerdict(
            case="cannot_produce",
            answer="yes",
            evidence=evidence,
            kind=kind,
            metric=metric,
            threshold=threshold,
            best=best,
            constrained=constrained,
        )
    if facts.meets(best):
        return StructuredOutputVerdict(
            case="meets_target",
            answer="no",
            evidence=evidence,
            settled=best.metric.ci_low >= threshold,
            kind=kind,
            metric=metric,
            threshold=threshold,
            best=best,
            constrained=constrained,
        )
    return StructuredOutputVerdict(
        case="straddles_target",
        answer="yes",
        evidence=evidence,
        settled=False,
        kind=kind,
        metric=metric,
        threshold=threshold,
        best=best,
        constrained=constrained,
    )


SmallerFasterCase = Literal["no_budget", "none_meets_target", "within_budget", "budget_unmeasured", "over_budget"]


@dataclass(frozen=True, kw_only=True)
class SmallerFasterVerdict(Verdict):
    """Does every candidate good enough miss the latency or cost budget?"""

    node: ClassVar[str] = "smaller_faster"
    case: SmallerFasterCase
    threshold: float
    p95_latency_ms: float | None
    cost_per_1m_tokens: float | None
    candidate: Measured | None = None
    """The candidate that reaches the target within the budgets, or the best one that misses them."""


def smaller_faster_verdict(facts: Facts) -> SmallerFasterVerdict:
    """Does every candidate that reaches the quality target miss the latency or cost budget?"""

    def verdict(
        case: SmallerFasterCase, answer: AnswerValue, evidence: list[Evidence], candidate: Measured | None = None
    ) -> SmallerFasterVerdict:
        return SmallerFasterVerdict(
            case=case,
            answer=answer,
            evidence=evidence,
            candidate=candidate,
            threshold=facts.threshold,
            p95_latency_ms=facts.p95_latency_ms,
            cost_per_1m_tokens=facts.cost_per_1m_tokens,
        )

    if facts.p95_latency_ms is None and facts.cost_per_1m_tokens is None:
        return verdict("no_budget", "no", [])
    good = [c for c in facts.candidates if facts.meets(c)]
    if not good:
        return verdict("none_meets_target", "no", [])
    within = {c.name: facts.within_budget(c) for c in good}
    budget_evidence = [facts.budget_evidence(c) for c in good]
    evidence = [facts.evidence(c) for c in good] + [e for e in budget_evidence if e is not None]
    if any(fits is True for fits in within.values()):
        return verdict("within_budget", "no", evidence, next(c for c in good if within[c.name]))
    if any(fits is None for fits in within.values()):
        return verdict("budget_unmeasured", "unknown", evidence)
    return verdict("over_budget", "yes", evidence, facts.best(good))


@dataclass(frozen=True, kw_only=True)
class ResidencyVerdict(Verdict):
    """Must it be self-hosted, and does a self-hosted candidate reach the target?"""

    node: ClassVar[str] = "residency"
    case: Literal["hosted_allowed", "not_measured", "self_hosted_meets", "only_hosted_meet", "none_meets"]
    metric: str
    hosted: list[str] = field(default_factory=list)
    """Hosted candidates that were probed but are inadmissible."""
    withheld: list[str] = field(default_factory=list)
    """Hosted candidates not probed at all: the data may not leave."""
    best_self_hosted: Measured | None = None
    hosted_meeting: list[str] = field(default_factory=list)


def residency_verdict(facts: Facts) -> ResidencyVerdict:
    """Must it be self-hosted while no self-hosted candidate reaches the target?"""
    if not facts.self_hosted_only:
        return ResidencyVerdict(case="hosted_allowed", answer="no", declared=True, metric=facts.metric)
    hosted = [c.name for c in facts.candidates if not c.self_hosted]
    evidence = [facts.evidence(c) for c in facts.candidates]
    if facts.prompt_error and not any(c.self_hosted for c in facts.candidates):
        # "no self-hosted candidate reaches the target" would be a guess: none could be measured.
        return ResidencyVerdict(
            case="not_measured",
            answer="unknown",
            evidence=evidence,
            metric=facts.metric,
            hosted=hosted,
            withheld=facts.withheld,
            failure=facts.prompt_error,
        )
    local_good = [c for c in facts.candidates if c.self_hosted and facts.meets(c)]
    if local_good:
        return ResidencyVerdict(
            case="self_hosted_meets",
            answer="no",
            evidence=evidence,
            metric=facts.metric,
            hosted=hosted,
            withheld=facts.withheld,
            best_self_hosted=facts.best(local_good),
        )
    hosted_good = [c.name for c in facts.candidates if not c.self_hosted and facts.meets(c)]
    return ResidencyVerdict(
        case="only_hosted_meet" if hosted_good else "none_meets",
        answer="yes",
        evidence=evidence,
        declared=True,
        metric=facts.metric,
        hosted=hosted,
        withheld=facts.withheld,
        hosted_meeting=hosted_good,
    )


@dataclass(frozen=True, kw_only=True)
class PersonaVerdict(Verdict):
    """With a persona declared, does prompting hold it over a long conversation?"""

    node: ClassVar[str] = "persona"
    case: Literal["not_declared", "not_measured", "prompting_holds", "prompting_fails"]
    metric: str
    threshold: float
    best: Measured | None = None
    prompt_error: str | None = None
    drift: PersonaDrift | None = None
    """The persona probe's curve; ``None`` when it could not run (then the best candidate against the target)."""
    drift_error: str | None = None


def persona_verdict(facts: Facts) -> PersonaVerdict:
    """With a persona declared: does the best prompt take the persona on (identifiable above chance at turn 1) and keep
    that to the last probed turn (no significant drop, the drop within the margin)? Without the probe: does the best
    prompt reach the target?"""
    if not facts.needs.persona:
        return PersonaVerdict(
            case="not_declared", answer="no", declared=True, metric=facts.metric, threshold=facts.threshold
        )
    drift = facts.persona_drift
    if drift is not None:
        curve = drift.curve
        first, last = curve.points[0], curve.points[-1]
        holds = drift.takes_it_on and curve.drift_turn is None and curve.holds.get(str(last.turn), False)
        change = curve.against_first[-1]
        evidence = [
            Evidence(
                label=f"{drift.candidate} at turn {p.turn}",
                metric=curve.metric,
                value=p.value.value,
                ci_low=p.value.ci_low,
                ci_high=p.value.ci_high,
                n=p.value.n,
                probe="persona drift",
            )
            for p in (first, last)
        ]
        evidence.append(
            Evidence(
                label=f"turn {last.turn} − turn {first.turn}",
                metric=f"{curve.metric} change",
                value=change.diff,
                ci_low=change.ci_low,
                ci_high=change.ci_high,
                threshold=-drift.margin,
                n=change.n,
                probe="persona drift",
            )
        )
        return PersonaVerdict(
            case="prompting_holds" if holds else "prompting_fails",
            answer="no" if holds else "yes",
            evidence=evidence,
            metric=facts.metric,
            threshold=facts.threshold,
            drift=drift,
        )
    best = facts.best()
    if best is None:
        return PersonaVerdict(
            case="not_measured",
            answer="unknown",
            declared=True,
            metric=facts.metric,
            threshold=facts.threshold,
            prompt_error=facts.prompt_error,
            failure=facts.persona_error or facts.prompt_error,
            drift_error=facts.persona_error,
        )
    holds = facts.meets(best)
    return PersonaVerdict(
        case="prompting_holds" if holds else "prompting_fails",
        answer="no" if holds else "yes",
        evidence=[facts.evidence(best)],
        declared=True,
        metric=facts.metric,
        threshold=facts.threshold,
        best=best,
        drift_error=facts.persona_error,
    )
