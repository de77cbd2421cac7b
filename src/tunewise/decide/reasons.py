"""The explanation step: a node's verdict, in words (the ``reason`` of its answer in the report)."""

from __future__ import annotations

from tunewise.decide.facts import Measured
from tunewise.decide.verdicts import (
    KnowledgeVerdict,
    LikelihoodGain,
    PersonaVerdict,
    ResidencyVerdict,
    SmallerFasterVerdict,
    StructuredOutputVerdict,
    TaskGain,
    Verdict,
)


def points(difference: float) -> str:
    """A metric difference in points (metric units x 100), signed."""
    return f"{difference * 100:+.1f} points"


def describe(candidate: Measured, metric: str) -> str:
    """``name metric value (95% CI low-high, n=N)``."""
    value = candidate.metric
    return f"{candidate.name} {metric} {value.value:.3f} (95% CI {value.ci_low:.3f}-{value.ci_high:.3f}, n={value.n})"


def reason(verdict: Verdict) -> str:
    """Why the node answered as it did, from the figures its verdict rests on."""
    if isinstance(verdict, KnowledgeVerdict):
        return _knowledge(verdict)
    if isinstance(verdict, StructuredOutputVerdict):
        return _structured_output(verdict)
    if isinstance(verdict, SmallerFasterVerdict):
        return _smaller_faster(verdict)
    if isinstance(verdict, ResidencyVerdict):
        return _residency(verdict)
    if isinstance(verdict, PersonaVerdict):
        return _persona(verdict)
    raise TypeError(f"no explanation for {type(verdict).__name__}")


def _knowledge(verdict: KnowledgeVerdict) -> str:
    if verdict.case == "declared_no":
        return "declared: needs.domain_knowledge is false"
    if verdict.case == "no_documents":
        return (
            "no document collection is declared (data.documents), so there is no retrieval gain to measure; "
            "declare needs.domain_knowledge: true to override"
        )
    if verdict.case == "declared_yes":
        return "declared: needs.domain_knowledge is true (no RAG measurement)"
    if verdict.case == "not_measured":
        return f"the RAG probe did not run: {verdict.rag_error or 'no result'}"
    on_task = _on_task(verdict)
    on_likelihood = _on_likelihood(verdict.likelihood) if verdict.likelihood is not None else ""
    if not on_likelihood and verdict.likelihood_error:
        on_likelihood = f"answer likelihood not measured ({verdict.likelihood_error})"
    both = "; ".join(text for text in (on_task, on_likelihood) if text)
    if verdict.case == "rag_closes_gap":
        return f"RAG closes the gap: {both}"
    if verdict.case == "facts_unused":
        return (
            f"the documents hold facts the model lacks ({on_likelihood}), but this model does not yet turn them into "
            f"better answers ({on_task}): retrieve, with a reader that uses the passages (a larger model, or one "
            "fine-tuned on retrieved contexts)"
        )
    if verdict.case == "declared_measured":
        return f"declared: needs.domain_knowledge is true; measured: {both}"
    if verdict.likelihood is None:
        return f"RAG does not close the gap: {both}"
    return f"neither the answers nor their likelihood show missing knowledge: {both}"


def _on_task(verdict: KnowledgeVerdict) -> str:
    """What the RAG probe measured on the task metric (and the retriever's recall)."""
    text = f"the RAG probe did not run ({verdict.rag_error or 'no result'})"
    if verdict.task is not None:
        text = _task_gain(verdict.task)
    if verdict.recall_at_k is not None:
        text += f"; retrieval recall@k {verdict.recall_at_k:.2f}"
    return text


def _task_gain(task: TaskGain) -> str:
    gain = task.gain
    ci = f"{'paired ' if gain.paired else 'unpaired '}95% CI {points(gain.ci_low)} to {points(gain.ci_high)}"
    if task.reading == "clear":
        why = "excludes 0"
    elif task.reading == "ci_includes_zero":
        why = "CI includes 0"
    else:
        why = f"below the minimum gain {points(task.min_gain)}"
    target = f"{'reaches' if task.rag_meets_target else 'stays below'} the target {task.threshold}"
    return (
        f"{task.metric} {points(gain.diff)} for {gain.a} with passages over {gain.a} without ({ci}, {why}); "
        f"with passages ({gain.b}) it {target}"
    )


def _on_likelihood(reading: LikelihoodGain) -> str:
    likelihood = reading.likelihood
    vs_placebo, vs_closed = likelihood.gain_vs_placebo, likelihood.gain_vs_closed_book
    text = (
        f"reference answers cost {likelihood.retrieved:.2f} nats/token with the retrieved passages, "
        f"{likelihood.placebo:.2f} with random ones and {likelihood.closed_book:.2f} closed-book: "
        f"{vs_placebo.value:+.2f} nats/token vs placebo (95% CI {vs_placebo.ci_low:+.2f} to {vs_placebo.ci_high:+.2f}, "
        f"{likelihood.perplexity_drop:.0%} lower perplexity; minimum {reading.min_nll_gain}), "
        f"{vs_closed.value:+.2f} vs closed book (95% CI {vs_closed.ci_low:+.2f} to {vs_closed.ci_high:+.2f}), "
        f"n={vs_placebo.n}"
    )
    if reading.passages_hurt:
        text += (
            "; any passage in the prompt makes this model's reference answers less likely "
            "(format lost with long contexts)"
        )
    return text


def _structured_output(verdict: StructuredOutputVerdict) -> str:
    if verdict.case == "free_text":
        return f"the task is {verdict.kind!r}: free-text output, no schema or label set to produce"
    if verdict.case == "not_measured" or verdict.best is None:
        return f"no prompt probe result: {verdict.prompt_error or 'nothing measured'}"
    best = describe(verdict.best, verdict.metric)
    constrained, note = verdict.constrained, ""
    if constrained is not None:
        validity = f", validity {constrained.validity.value:.2f}" if constrained.validity is not None else ""
        note = f"; constrained decoding ({constrained.name}): {verdict.metric} {constrained.metric.value:.3f}{validity}"
    if verdict.case == "cannot_produce":
        what = "JSON schema" if verdict.kind == "extract" else "label set"
        return (
            f"the best candidate cannot produce the {what} well enough: {best}, "
            f"CI entirely below the target {verdict.threshold}{note}"
        )
    if verdict.case == "meets_target":
        caveat = "" if verdict.settled else " (the CI still reaches below it: more examples would settle it)"
        return f"{best} reaches the target {verdict.threshold}{caveat}{note}"
    return (
        f"{best} is below the target {verdict.threshold} (the CI still includes it: more examples would settle it "
        f"— raise decide.probes.max_examples){note}"
    )


def _smaller_faster(verdict: SmallerFasterVerdict) -> str:
    if verdict.case == "no_budget":
        return "no latency or cost budget is declared (targets.p95_latency_ms, targets.cost_per_1m_tokens)"
    if verdict.case == "none_meets_target":
        return f"no candidate reaches the quality target {verdict.threshold}: nothing to distil from yet"
    if verdict.case == "budget_unmeasured" or verdict.candidate is None:
        return "a candidate that reaches the target has no latency/cost measurement"
    name, figures = verdict.candidate.name, _operational(verdict.candidate)
    if verdict.case == "within_budget":
        return f"{name} reaches the target within the budgets ({figures})"
    return (
        f"{name} reaches the target but misses the budgets ({figures}; budgets p95 {verdict.p95_latency_ms} ms, "
        f"${verdict.cost_per_1m_tokens}/1M): distil it into a smaller model"
    )


def _operational(candidate: Measured) -> str:
    p95 = candidate.operational.get("latency_p95_ms")
    usd = candidate.operational.get("usd_per_1m_tokens")
    latency = f"p95 {p95:.0f} ms" if p95 is not None else "p95 n/a"
    cost = f"${usd:.3f}/1M" if usd is not None else "$/1M n/a"
    return f"{latency}, {cost}"


def _residency(verdict: ResidencyVerdict) -> str:
    if verdict.case == "hosted_allowed":
        return "targets.self_hosted_only is not set: hosted models are allowed"
    excluded = f" (hosted candidates excluded: {', '.join(verdict.hosted)})" if verdict.hosted else ""
    if verdict.withheld:
        excluded += f" (hosted candidates not probed, the data may not leave: {', '.join(verdict.withheld)})"
    if verdict.case == "not_measured":
        return f"self-hosting is required but no self-hosted candidate could be measured: {verdict.failure}{excluded}"
    if verdict.case == "self_hosted_meets" and verdict.best_self_hosted is not None:
        best = describe(verdict.best_self_hosted, verdict.metric)
        return f"self-hosting is required and {best} already reaches the target{excluded}"
    if verdict.case == "only_hosted_meet":
        meeting = ", ".join(verdict.hosted_meeting)
        why = f"only hosted candidates reach the target ({meeting}) and data may not leave"
    else:
        why = "self-hosting is required and no self-hosted candidate reaches the target"
    return f"{why}{excluded}: an open-weight model, fine-tuned, is the way to get there"


def _persona(verdict: PersonaVerdict) -> str:
    if verdict.case == "not_declared":
        return "no persona is declared (needs.persona)"
    drift = verdict.drift
    if drift is not None:
        curve = drift.curve
        first, last = curve.points[0], curve.points[-1]
        change = curve.against_first[-1]
        figures = (
            f"`{drift.candidate}`'s persona identifiability {first.value.value:.2f} at turn {first.turn}, "
            f"{last.value.value:.2f} at turn {last.turn} (change {change.diff:+.2f}, 95% CI [{change.ci_low:+.2f}, "
            f"{change.ci_high:+.2f}], {drift.conversations} conversations)"
        )
        if verdict.case == "prompting_holds":
            return f"persona declared and prompting holds it over {drift.turns} turns: {figures}, within {drift.margin}"
        if not drift.takes_it_on:
            return (
                f"persona declared and prompting never takes it on: at turn {first.turn} identifiability is not above "
                f"chance ({drift.chance:.2f}); {figures}"
            )
        if curve.drift_turn is not None:
            return f"persona declared and prompting loses it from turn {curve.drift_turn}: {figures}"
        return f"persona declared and prompting is not shown to hold it within {drift.margin}: {figures}"
    unprobed = f" (no drift probe: {verdict.drift_error})" if verdict.drift_error else ""
    if verdict.case == "not_measured" or verdict.best is None:
        return f"persona declared but nothing measured: {verdict.prompt_error or verdict.drift_error or 'no result'}"
    best = describe(verdict.best, verdict.metric)
    if verdict.case == "prompting_holds":
        return f"persona declared and prompting holds it: {best}{unprobed}"
    return f"persona declared and prompting does not hold it: {best} < {verdict.threshold}{unprobed}"
