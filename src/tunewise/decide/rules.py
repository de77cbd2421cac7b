"""The rules that turn probe measurements (and declared needs) into a node's yes / no / unknown, in words."""

from __future__ import annotations

from dataclasses import dataclass, field

from tunewise.decide.config import NeedsSpec
from tunewise.decide.record import AnswerLikelihood
from tunewise.decide.record import Evidence, NodeAnswer
from tunewise.records import MetricValue


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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

    def best(self, pool: list[Measured] | None = None) -> Measured | None:
        pool = self.candidates if pool is None else pool
        return max(pool, key=lambda m: (m.metric.value, m.metric.ci_low), default=None)

    def meets(self, m: Measured) -> bool:
        return m.metric.value >= self.threshold

    def within_budget(self, m: Measured) -> bool | None:
        """``None`` when a budget is declared but the candidate has no measurement for it."""
        checks = []
        if self.p95_latency_ms is not None:
            p95 = m.operational.get("latency_p95_ms")
            checks.append(None if p95 is None else p95 <= self.p95_latency_ms)
        if self.cost_per_1m_tokens is not None:
            usd = m.operational.get("usd_per_1m_tokens")
            checks.append(None if usd is None else usd <= self.cost_per_1m_tokens)
        if any(c is None for c in checks):
            return None
        return all(checks)

    def admissible(self, m: Measured) -> bool:
        return (m.self_hosted or not self.self_hosted_only) and self.within_budget(m) is not False

    def evidence(self, m: Measured) -> Evidence:
        v = m.metric
        return Evidence(m.name, self.metric, v.value, v.ci_low, v.ci_high, self.threshold, v.n, m.run_id, m.probe)


def pts(x: float) -> str:
    """A metric difference in points (metric units x 100), signed."""
    return f"{x * 100:+.1f} points"


def describe(m: Measured, metric: str) -> str:
    v = m.metric
    return f"{m.name} {metric} {v.value:.3f} (95% CI {v.ci_low:.3f}-{v.ci_high:.3f}, n={v.n})"


def knowledge(f: Facts) -> NodeAnswer:
    node = "knowledge"
    if f.needs.domain_knowledge is False:
        return NodeAnswer(node, "no", "declared: needs.domain_knowledge is false", declared=True)
    if f.needs.domain_knowledge == "auto" and not f.has_documents:
        return NodeAnswer(node, "no", "no document collection is declared (data.documents), so there is no retrieval gain to measure; "
                          "declare needs.domain_knowledge: true to override")
    g, lk = f.rag_gain, f.likelihood
    if g is None and lk is None:
        if f.needs.domain_knowledge is True:
            return NodeAnswer(node, "yes", "declared: needs.domain_knowledge is true (no RAG measurement)", declared=True)
        return NodeAnswer(node, "unknown", f"the RAG probe did not run: {f.rag_error or 'no result'}")
    ev: list[Evidence] = []
    task_gain, task_text = False, f"the RAG probe did not run ({f.rag_error or 'no result'})"
    if g is not None:
        rag = next((m for m in f.candidates if m.name == g.b), None)
        ev += [f.evidence(m) for m in f.candidates if m.name in (g.a, g.b)]
        ev.append(Evidence(f"{g.b} - {g.a}", f.metric, g.diff, g.ci_low, g.ci_high, f.min_gain, g.n, g.run_id, "rag"))
        task_gain = g.ci_low > 0 and g.diff >= f.min_gain
        ci = f"{'paired ' if g.paired else 'unpaired '}95% CI {pts(g.ci_low)} to {pts(g.ci_high)}"
        why = "excludes 0" if task_gain else ("CI includes 0" if g.ci_low <= 0 else f"below the minimum gain {pts(f.min_gain)}")
        target = f"reaches the target {f.threshold}" if rag is not None and f.meets(rag) else f"stays below the target {f.threshold}"
        task_text = f"{f.metric} {pts(g.diff)} with RAG over {g.a} ({ci}, {why}); RAG {target}"
        other = f.best([m for m in f.candidates if m.name != g.b and m.prompt != "rag"])
        if other is not None and rag is not None and other.name != g.a:
            task_text += f"; best prompt without retrieval: {other.name} {other.metric.value:.3f} vs RAG {rag.metric.value:.3f}"
    if f.recall_at_k is not None:
        task_text += f"; retrieval recall@k {f.recall_at_k:.2f}"
    facts_gain, facts_text = False, f"answer likelihood not measured ({f.likelihood_error})" if f.likelihood_error else ""
    if lk is not None:
        v, c = lk.gain_vs_placebo, lk.gain_vs_closed_book
        ev.append(Evidence("retrieved vs placebo passages", "answer_nll_gain", v.value, v.ci_low, v.ci_high, f.min_nll_gain, v.n, None, "answer likelihood"))
        ev.append(Evidence("retrieved vs closed book", "answer_nll_gain", c.value, c.ci_low, c.ci_high, None, c.n, None, "answer likelihood"))
        # The placebo is the control: any passage changes the prompt's length and register (a small model may stop
        # answering in the expected format), so only the difference to other documents isolates the facts.
        facts_gain = v.ci_low > 0 and v.value >= f.min_nll_gain
        facts_text = (f"reference answers cost {lk.retrieved:.2f} nats/token with the retrieved passages, {lk.placebo:.2f} with random "
                      f"ones and {lk.closed_book:.2f} closed-book: {v.value:+.2f} nats/token vs placebo (95% CI {v.ci_low:+.2f} to "
                      f"{v.ci_high:+.2f}, {lk.perplexity_drop:.0%} lower perplexity; minimum {f.min_nll_gain}), {c.value:+.2f} vs closed book "
                      f"(95% CI {c.ci_low:+.2f} to {c.ci_high:+.2f}), n={v.n}")
        if c.ci_high < 0:
            facts_text += "; any passage in the prompt makes this model's reference answers less likely (format lost with long contexts)"
    both = "; ".join(t for t in (task_text, facts_text) if t)
    if task_gain:
        return NodeAnswer(node, "yes", f"RAG closes the gap: {both}", ev)
    if facts_gain:
        return NodeAnswer(node, "yes", f"the documents hold facts the model lacks ({facts_text}), but this model does not yet turn "
                          f"them into better answers ({task_text}): retrieve, with a reader that uses the passages (a larger model, "
                          "or one fine-tuned on retrieved contexts)", ev)
    if f.needs.domain_knowledge is True:
        return NodeAnswer(node, "yes", f"declared: needs.domain_knowledge is true; measured: {both}", ev, True)
    lead = "RAG does not close the gap" if lk is None else "neither the answers nor their likelihood show missing knowledge"
    return NodeAnswer(node, "no", f"{lead}: {both}", ev)


def structured_output(f: Facts) -> NodeAnswer:
    node = "structured_output"
    if f.kind not in ("extract", "classify"):
        return NodeAnswer(node, "no", f"the task is {f.kind!r}: free-text output, no schema or label set to produce")
    best = f.best()
    if best is None:
        return NodeAnswer(node, "unknown", f"no prompt probe result: {f.prompt_error or 'nothing measured'}")
    what = "JSON schema" if f.kind == "extract" else "label set"
    ev = [f.evidence(m) for m in sorted(f.candidates, key=lambda m: -m.metric.value)]
    constrained = [m for m in f.candidates if m.constrained]
    note = ""
    if constrained:
        c = constrained[0]
        validity = f", validity {c.validity.value:.2f}" if c.validity is not None else ""
        note = f"; constrained decoding ({c.name}): {f.metric} {c.metric.value:.3f}{validity}"
    if best.metric.ci_high < f.threshold:
        return NodeAnswer(node, "yes", f"the best candidate cannot produce the {what} well enough: {describe(best, f.metric)}, "
                          f"CI entirely below the target {f.threshold}{note}", ev)
    if f.meets(best):
        clear = best.metric.ci_low >= f.threshold
        caveat = "" if clear else " (the CI still reaches below it: more examples would settle it)"
        return NodeAnswer(node, "no", f"{describe(best, f.metric)} reaches the target {f.threshold}{caveat}{note}", ev, settled=clear)
    return NodeAnswer(node, "yes", f"{describe(best, f.metric)} is below the target {f.threshold} (the CI still includes it: "
                      f"more examples would settle it — raise decide.probes.max_examples){note}", ev, settled=False)


def smaller_faster(f: Facts) -> NodeAnswer:
    node = "smaller_faster"
    if f.p95_latency_ms is None and f.cost_per_1m_tokens is None:
        return NodeAnswer(node, "no", "no latency or cost budget is declared (targets.p95_latency_ms, targets.cost_per_1m_tokens)")
    good = [m for m in f.candidates if f.meets(m)]
    if not good:
        return NodeAnswer(node, "no", f"no candidate reaches the quality target {f.threshold}: nothing to distil from yet")
    budget = {m.name: f.within_budget(m) for m in good}
    ev = [f.evidence(m) for m in good] + [_budget_evidence(f, m) for m in good]
    ev = [e for e in ev if e is not None]
    if any(v is True for v in budget.values()):
        ok = next(m for m in good if budget[m.name])
        return NodeAnswer(node, "no", f"{ok.name} reaches the target within the budgets ({_ops(ok)})", ev)
    if any(v is None for v in budget.values()):
        return NodeAnswer(node, "unknown", "a candidate that reaches the target has no latency/cost measurement", ev)
    best = f.best(good)
    assert best is not None
    return NodeAnswer(node, "yes", f"{best.name} reaches the target but misses the budgets ({_ops(best)}; budgets "
                      f"p95 {f.p95_latency_ms} ms, ${f.cost_per_1m_tokens}/1M): distil it into a smaller model", ev)


def residency(f: Facts) -> NodeAnswer:
    node = "residency"
    if not f.self_hosted_only:
        return NodeAnswer(node, "no", "targets.self_hosted_only is not set: hosted models are allowed", declared=True)
    hosted = [m.name for m in f.candidates if not m.self_hosted]
    excluded = f" (hosted candidates excluded: {', '.join(hosted)})" if hosted else ""
    if f.withheld:
        excluded += f" (hosted candidates not probed, the data may not leave: {', '.join(f.withheld)})"
    local_good = [m for m in f.candidates if m.self_hosted and f.meets(m)]
    ev = [f.evidence(m) for m in f.candidates]
    if local_good:
        best = f.best(local_good)
        assert best is not None
        return NodeAnswer(node, "no", f"self-hosting is required and {describe(best, f.metric)} already reaches the target{excluded}", ev)
    hosted_good = [m.name for m in f.candidates if not m.self_hosted and f.meets(m)]
    if hosted_good:
        why = f"only hosted candidates reach the target ({', '.join(hosted_good)}) and data may not leave"
    else:
        why = "self-hosting is required and no self-hosted candidate reaches the target"
    return NodeAnswer(node, "yes", f"{why}{excluded}: an open-weight model, fine-tuned, is the way to get there", ev, True)


def persona(f: Facts) -> NodeAnswer:
    node = "persona"
    if not f.needs.persona:
        return NodeAnswer(node, "no", "no persona is declared (needs.persona)", declared=True)
    best = f.best()
    if best is None:
        return NodeAnswer(node, "unknown", f"persona declared but nothing measured: {f.prompt_error or 'no result'}", declared=True)
    if f.meets(best):
        return NodeAnswer(node, "no", f"persona declared and prompting holds it: {describe(best, f.metric)}", [f.evidence(best)], True)
    return NodeAnswer(node, "yes", f"persona declared and prompting does not hold it: {describe(best, f.metric)} < {f.threshold}",
                      [f.evidence(best)], True)


def _ops(m: Measured) -> str:
    p95 = m.operational.get("latency_p95_ms")
    usd = m.operational.get("usd_per_1m_tokens")
    parts = [f"p95 {p95:.0f} ms" if p95 is not None else "p95 n/a", f"${usd:.3f}/1M" if usd is not None else "$/1M n/a"]
    return ", ".join(parts)


def _budget_evidence(f: Facts, m: Measured) -> Evidence | None:
    if f.p95_latency_ms is not None and "latency_p95_ms" in m.operational:
        return Evidence(m.name, "latency_p95_ms", m.operational["latency_p95_ms"], threshold=f.p95_latency_ms, run_id=m.run_id, probe=m.probe)
    if f.cost_per_1m_tokens is not None and "usd_per_1m_tokens" in m.operational:
        return Evidence(m.name, "usd_per_1m_tokens", m.operational["usd_per_1m_tokens"], threshold=f.cost_per_1m_tokens, run_id=m.run_id, probe=m.probe)
    return None
