"""``decide``: run the probes, answer every node, walk the tree, price the result, write the report."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tunewise import egress
from tunewise.config import EMBEDDED_MODEL, CandidateSpec, DecideSpec, ModelSpec, ProbeSpec, Project
from tunewise.decide.advice import next_command, runner_up, summary_line, undecided
from tunewise.decide.cost import CostEstimate, estimate_cost
from tunewise.decide.facts import Facts, Measured, PersonaDrift
from tunewise.decide.likelihood_probe import likelihood_probe
from tunewise.decide.probes import (
    Settled,
    find_gain,
    measured_candidates,
    prompt_settled,
    rag_settled,
    retrieval_recall,
    run_probe,
)
from tunewise.decide.record import Decision, NodeAnswer, ProbeRecord
from tunewise.decide.report import write_decision
from tunewise.decide.sufficiency import SufficiencyEstimate
from tunewise.decide.sufficiency_probe import TrainFn, sufficiency_probe
from tunewise.decide.tree import ACTIONS, TREE, Walk, walk
from tunewise.doctor import candidate_needs, require
from tunewise.errors import InputError
from tunewise.examples import load_examples, spread_order
from tunewise.io.outputs import check_output_dir, check_output_root
from tunewise.models.base import Backend
from tunewise.models.registry import create_backend
from tunewise.persona import persona_eval
from tunewise.records import EvalSummary, Example
from tunewise.retrieval.documents import load_documents


@dataclass
class _ProbeSession:
    """One ``decide`` call's probing: what it runs against, and the records, measurements and failures so far."""

    project: Project
    spec: DecideSpec
    examples: list[Example]
    backends: dict[str, Backend]
    extra_models: dict[str, ModelSpec]
    probes: list[ProbeRecord] = field(default_factory=list)
    measured: list[Measured] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def probe(self, name: str, candidates: list[CandidateSpec], settled: Settled) -> EvalSummary | None:
        outcome = run_probe(
            self.project,
            name,
            candidates,
            self.examples,
            self.spec.probes,
            settled,
            backends=self.backends,
            extra_models=self.extra_models,
        )
        self.probes.append(outcome.record)
        if outcome.summary is None:
            self.errors[name] = outcome.record.error or "failed"
            return None
        constrained = {c.name for c in candidates if c.constrained}
        fresh = measured_candidates(outcome.summary, name, self.project, self.extra_models, constrained)
        fresh_names = {candidate.name for candidate in fresh}
        self.measured = [candidate for candidate in self.measured if candidate.name not in fresh_names] + fresh
        return outcome.summary


@egress.guarded
def decide(
    project: Project,
    *,
    split: str = "dev",
    spec: DecideSpec | None = None,
    backends: dict[str, Backend] | None = None,
    train_fn: TrainFn | None = None,
    out: str | Path | None = None,
    track: bool = True,
    sufficiency: bool | None = None,
    limit: int | None = None,
) -> Decision:
    """Answer the fine-tuning decision tree for a project with measurements, and write the report.

    Args:
        project: the loaded spec (targets, candidates, ``data.documents``, optional ``decide:`` section).
        split: the split the probes evaluate on.
        spec: overrides the spec's ``decide:`` section.
        backends: ready backends by model name (tests, in-process models).
        train_fn: runs one short training on N examples (default: :func:`tunewise.train.train`).
        out: the decision directory (default ``.tunewise/decisions/<id>``).
        track: log the decision to MLflow.
        sufficiency: force the data-sufficiency probe on/off (default: ``decide.sufficiency.enabled``,
            run only when the recommendation involves training).
        limit: probe only the split's first N examples (the ones ``tunewise eval --limit N`` scores).

    Returns:
        The :class:`Decision`, also written as ``decision.json``, ``report.md`` and ``report.html``.

    Raises:
        InputError: contradictory targets or budgets in wrong units, bad data, a malformed document collection.
    """
    if out:  # checked before any probe runs
        check_output_dir(out)
    else:
        check_output_root(project.state_dir / "decisions")
    dspec = spec or project.spec.decide
    if project.spec.data.documents is not None:
        load_documents(project.declared_file(project.spec.data.documents, ("data", "documents")))  # fail early
    if dspec.probes.model and _egress_forbidden(project, dspec.probes.model):
        raise InputError(
            f"model {dspec.probes.model!r} is hosted, and targets.self_hosted_only forbids sending the data to it",
            file=project.spec_file,
            field="decide.probes.model",
        )
    examples = spread_order(
        load_examples(project, project.split_path(split), limit=limit)
    )  # probes take prefixes: never one class
    run = _ProbeSession(project, dspec, examples, dict(backends or {}), {})
    _require_packages(run)
    _ensure_backends(run)
    decision_id = f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    facts = _measure(run, split)
    answers = {node.id: node.answer(facts) for node in TREE}
    admissible = [m for m in facts.candidates if facts.admissible(m) and facts.meets(m)]
    route = walk(answers, bool(admissible), terminal_error=None if facts.candidates else facts.prompt_error)
    trains = ACTIONS[route.recommendation].fine_tunes or any(ACTIONS[a].fine_tunes for a in route.also)
    estimate: SufficiencyEstimate | None = None
    cost: CostEstimate | None = None
    if trains and (sufficiency if sufficiency is not None else dspec.sufficiency.enabled):
        estimate, cost = _sufficiency_and_cost(run, facts, train_fn, decision_id)
    elif trains:
        cost = _cost(run, facts, None, None)
    decision = _assemble(run, facts, answers, route, decision_id, estimate, cost, admissible)
    return write_decision(
        project, decision, Path(out) if out else project.state_dir / "decisions" / decision_id, track=track
    )


def probe_model(project: Project, spec: DecideSpec) -> str:
    """``probes.model``, else the first candidate's model that data may be sent to, else the embedded model."""
    if spec.probes.model:
        return spec.probes.model
    allowed = [c.model for c in project.spec.candidates if not _egress_forbidden(project, c.model)]
    return allowed[0] if allowed else EMBEDDED_MODEL


def _egress_forbidden(project: Project, model: str) -> bool:
    """A hosted model the data may not be sent to (``targets.self_hosted_only``): never probed."""
    return project.spec.targets.self_hosted_only and not project.spec.model_spec(model).self_hosted


def _require_packages(run: _ProbeSession) -> None:
    """Fail before probing when a package the probes load is missing: every probe would fail on it, minutes later."""
    project, ps = run.project, run.spec.probes
    model = probe_model(project, run.spec)
    prompts = prompt_probes(project, ps, model)
    probes = list(prompts)
    if project.spec.task.kind == "extract" and ps.constrained:
        probes.append(CandidateSpec(name="constrained", model=model, constrained=True))
    if project.spec.data.documents is not None and run.spec.needs.domain_knowledge is not False:
        probes += [_with_passages(p, ps) for p in prompts]  # which one the RAG probe runs depends on the prompts probe
    declared = [c for c in project.spec.candidates if not _egress_forbidden(project, c.model)]
    require(candidate_needs(project, [*probes, *declared], ready=run.backends), "decide")


def _ensure_backends(run: _ProbeSession) -> None:
    """One backend per model for every probe, so a local model loads once."""

    names = {probe_model(run.project, run.spec), *(c.model for c in run.project.spec.candidates)}
    names = {name for name in names if not _egress_forbidden(run.project, name)}
    for name in sorted(names - set(run.backends)):
        run.backends[name] = create_backend(name, run.project.spec.model_spec(name), run.project)


def _measure(run: _ProbeSession, split: str) -> Facts:
    project, ps = run.project, run.spec.probes
    kind, metric, threshold = project.spec.task.kind, project.spec.primary_metric, project.spec.targets.threshold
    model = probe_model(project, run.spec)
    prompts = prompt_probes(project, ps, model)
    run.probe("prompts", prompts, prompt_settled(threshold, ps.ci_half_width, metric))
    declared = [c for c in project.spec.candidates if c.name not in {p.name for p in prompts}]
    kept = [c for c in declared if not _egress_forbidden(project, c.model)]
    if kept:
        run.probe("declared candidates", kept, prompt_settled(threshold, ps.ci_half_width, metric))
    withheld = [c.name for c in declared if c not in kept]
    if withheld:
        why = "not probed: targets.self_hosted_only forbids sending data to hosted models"
        run.probes.append(ProbeRecord(name="hosted candidates", candidates=withheld, n=0, seconds=0.0, stopped=why))
    best = max((m for m in run.measured if m.probe == "prompts"), key=lambda m: m.metric.value, default=None)
    best_spec = next((p for p in prompts if best and p.name == best.name), prompts[0])
    local = project.spec.model_spec(model).backend == "local"
    if kind == "extract" and ps.constrained and local:
        constrained = best_spec.model_copy(update={"name": f"{best_spec.name}+grammar", "constrained": True})
        run.probe("constrained decoding", [constrained], prompt_settled(threshold, ps.ci_half_width, metric))
    gain, recall, likelihood = None, None, None
    has_docs = project.spec.data.documents is not None
    if has_docs and run.spec.needs.domain_knowledge is not False:
        # The controlled comparison: the best prompt with and without the retrieved passages. Against a weaker
        # prompt, the gain would credit the passages with what the shots already give.
        rag = _with_passages(best_spec, ps)
        settled = rag_settled(threshold, ps.ci_half_width, ps.min_gain, best_spec.name, rag.name)
        summary = run.probe("rag", [best_spec, rag], settled)
        gain = find_gain(summary, best_spec.name, rag.name) if summary is not None else None
        recall, record = retrieval_recall(project, run.examples, ps, getattr(project.spec.data, split, None))
        run.probes.append(record)
        if ps.likelihood:
            likelihood, record = likelihood_probe(project, run.examples, run.backends[model], ps)
            run.probes.append(record)
            if record.error:
                run.errors["answer likelihood"] = record.error
    drift = _persona_probe(run, model) if run.spec.needs.persona and kind == "chat" else None
    targets = project.spec.targets
    probe_errors = "; ".join(f"{probe}: {error}" for probe, error in run.errors.items() if probe != "answer likelihood")
    return Facts(
        kind=kind,
        metric=metric,
        threshold=threshold,
        needs=run.spec.needs,
        min_gain=ps.min_gain,
        candidates=list(run.measured),
        has_documents=has_docs,
        rag_gain=gain,
        rag_error=run.errors.get("rag"),
        prompt_error=probe_errors or None,
        self_hosted_only=targets.self_hosted_only,
        p95_latency_ms=targets.p95_latency_ms,
        cost_per_1m_tokens=targets.cost_per_1m_tokens,
        recall_at_k=recall,
        likelihood=likelihood,
        likelihood_error=run.errors.get("answer likelihood"),
        min_nll_gain=ps.min_nll_gain,
        withheld=withheld,
        persona_drift=drift,
        persona_error=run.errors.get("persona drift"),
    )


def prompt_probes(project: Project, ps: ProbeSpec, model: str) -> list[CandidateSpec]:
    """The prompts probe's candidates: zero-shot, and k-shot when the project has a train split."""
    prompts = [CandidateSpec(name="zero-shot", model=model, prompt="zero_shot")]
    if project.spec.data.train is not None:
        prompts.append(
            CandidateSpec(
                name=f"{ps.k_shot}-shot", model=model, prompt="k_shot", k=ps.k_shot, shot_selection=ps.shot_selection
            )
        )
    return prompts


def _with_passages(prompt: CandidateSpec, ps: ProbeSpec) -> CandidateSpec:
    """``prompt`` with the probe's retrieved passages in its input: ``rag`` for zero-shot, else ``<name>-rag``."""
    if prompt.prompt == "zero_shot":
        return CandidateSpec(
            name="rag", model=prompt.model, prompt="rag", retriever=ps.retriever, retrieval_k=ps.retrieval_k
        )
    return CandidateSpec(
        name=f"{prompt.name}-rag",
        model=prompt.model,
        prompt="k_shot_rag",
        k=prompt.k,
        shot_selection=prompt.shot_selection,
        retriever=ps.retriever,
        retrieval_k=ps.retrieval_k,
    )


def _persona_probe(run: _ProbeSession, model: str) -> PersonaDrift | None:
    """The persona section's consistency eval on the probe model with the data's persona as its prompt."""
    project = run.project
    candidate = CandidateSpec(name="zero-shot", model=model)
    start = time.perf_counter()
    try:
        result = persona_eval(project, candidates=[candidate], backends=run.backends, name="decide", track=False)
    except Exception as exc:  # a failed probe leaves the node to the fallback rule, with its reason
        run.errors["persona drift"] = f"{type(exc).__name__}: {exc}"
        run.probes.append(
            ProbeRecord(
                name="persona drift",
                candidates=[candidate.name],
                n=0,
                seconds=time.perf_counter() - start,
                stopped="failed",
                error=run.errors["persona drift"],
            )
        )
        return None
    spec = project.spec.persona
    run.probes.append(
        ProbeRecord(
            name="persona drift",
            candidates=[candidate.name],
            n=result.conversations,
            seconds=time.perf_counter() - start,
            stopped=f"{result.conversations} conversations x {result.turns} turns ({result.run_dir / 'report.html'})",
        )
    )
    curve = result.candidate(candidate.name).curve("identifiability")
    chance = 1 / (spec.distractors + 1)
    return PersonaDrift(candidate.name, curve, spec.margin, result.conversations, result.turns, chance)


def _sufficiency_and_cost(
    run: _ProbeSession, facts: Facts, train_fn: TrainFn | None, tag: str
) -> tuple[SufficiencyEstimate, CostEstimate]:
    project = run.project
    train_size = len(load_examples(project, project.split_path("train"))) if project.spec.data.train else 0
    estimate, points, record = sufficiency_probe(
        project, run.spec.sufficiency, facts.threshold, train_size, train_fn, tag
    )
    run.probes.append(record)
    tokens_per_s = max((p.tokens_per_s for p in points if p.tokens_per_s), default=None)
    n = int(estimate.n_needed) if estimate.n_needed else None
    return estimate, _cost(run, facts, tokens_per_s, n)


def _cost(run: _ProbeSession, facts: Facts, tokens_per_s: float | None, n_needed: int | None) -> CostEstimate:
    project, dspec = run.project, run.spec
    train: list[Example] = load_examples(project, project.split_path("train")) if project.spec.data.train else []
    backend = run.backends.get(probe_model(project, dspec))
    sample = train[:64] or run.examples[:64]
    count: Callable[[str], int] = backend.count_tokens if backend is not None else (lambda t: max(1, len(t) // 4))
    tokens_per_example = sum(count(json.dumps(e.messages) + json.dumps(e.target)) for e in sample) / max(1, len(sample))
    gpu_hour = dspec.gpu_hour_usd if dspec.gpu_hour_usd is not None else project.spec.eval.gpu_hour_usd
    hosted = dspec.hosted_usd_per_1m
    if hosted is None:
        prices = [
            (m.price_in_per_1m or 0) / 2 + (m.price_out_per_1m or 0) / 2
            for m in project.spec.models.values()
            if not m.self_hosted and (m.price_in_per_1m is not None or m.price_out_per_1m is not None)
        ]
        hosted = min(prices) if prices else None
    own = next((m for m in facts.candidates if m.probe == "prompts" and "usd_per_1m_tokens" in m.operational), None)
    return estimate_cost(
        train_examples=n_needed or len(train),
        tokens_per_example=tokens_per_example,
        epochs=dspec.training_epochs,
        tokens_per_s=tokens_per_s,
        gpu_hour_usd=gpu_hour,
        engineering=dspec.engineering,
        traffic_tokens_per_month=dspec.traffic_tokens_per_month,
        hosted_usd_per_1m=hosted,
        self_hosted_usd_per_1m=own.operational["usd_per_1m_tokens"] if own else None,
    )


def _assemble(
    run: _ProbeSession,
    facts: Facts,
    answers: dict[str, NodeAnswer],
    route: Walk,
    decision_id: str,
    estimate: SufficiencyEstimate | None,
    cost: CostEstimate | None,
    admissible: list[Measured],
) -> Decision:
    rec = route.recommendation
    if rec == "undecided":
        summary, up, why, command = undecided(route, run.project)
    else:
        up, why = runner_up(rec, facts, answers, admissible)
        summary = summary_line(rec, route.deciding, answers, facts, admissible)
        command = next_command(rec, run.project, run.spec, facts, admissible, estimate)
    return Decision(
        project=run.project.spec.name,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        decision_id=decision_id,
        recommendation=rec,
        summary=summary,
        path=route.path,
        answers=[answers[n.id] for n in TREE],
        runner_up=up,
        runner_up_reason=why,
        next_command=command,
        also=route.also,
        provisional=route.provisional,
        metric=facts.metric,
        threshold=facts.threshold,
        probes=run.probes,
        sufficiency=estimate,
        cost=cost,
    )


__all__ = ["decide", "probe_model"]
