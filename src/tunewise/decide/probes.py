"""Probes: cheap evaluations sized by their confidence intervals, each timed and recorded.

A probe evaluates its candidates on growing prefixes of the split (``chunk``, ``2*chunk``, ...; the eval
harness' prediction cache makes earlier examples free) and stops as soon as every interval it needs answers its
node: narrower than ``ci_half_width`` on each side, or already clear of the threshold (or of 0 for a gain).
A probe that fails (an endpoint down, a model that does not load) is recorded with its reason, never guessed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tunewise.config import CandidateSpec, ModelSpec, ProbeSpec, Project
from tunewise.decide.facts import Gain, Measured
from tunewise.decide.record import ProbeRecord
from tunewise.errors import TunewiseError
from tunewise.eval import evaluate
from tunewise.io.jsonl import read_jsonl
from tunewise.models.base import Backend
from tunewise.records import EvalSummary, Example, MetricValue
from tunewise.report.progress import ProgressDisplay
from tunewise.retrieval.index import load_or_build, recall_at_k
from tunewise.retrieval.rag import query_text

Settled = Callable[[EvalSummary], bool]


@dataclass(frozen=True)
class ProbeOutcome:
    record: ProbeRecord
    summary: EvalSummary | None


def interval_settled(value: MetricValue, threshold: float, tolerance: float) -> bool:
    """True when the CI is narrow enough, or lies entirely on one side of ``threshold``."""
    return (value.ci_high - value.ci_low) / 2 <= tolerance or value.ci_low >= threshold or value.ci_high < threshold


def gain_settled(gain: Gain, min_gain: float) -> bool:
    """True when the knowledge rule's answer can no longer change: a clear gain, or one that cannot reach
    ``min_gain``."""
    return (gain.ci_low > 0 and gain.diff >= min_gain) or gain.ci_high < min_gain


def run_probe(
    project: Project,
    name: str,
    candidates: list[CandidateSpec],
    examples: list[Example],
    spec: ProbeSpec,
    settled: Settled,
    *,
    backends: dict[str, Backend],
    extra_models: dict[str, ModelSpec] | None = None,
) -> ProbeOutcome:
    """Evaluate ``candidates`` on growing prefixes of ``examples`` until ``settled`` or ``max_examples``."""

    start = time.perf_counter()
    cap = min(spec.max_examples, len(examples))
    n = min(spec.chunk, cap)
    run_ids: list[str] = []
    summary: EvalSummary | None = None
    names = [c.name for c in candidates]
    display = ProgressDisplay("decide").start()
    rounds = display.task(name, cap, rate_unit="ex")
    while True:
        try:
            summary = evaluate(
                project,
                candidates=candidates,
                examples=examples[:n],
                backends=backends,
                extra_models=extra_models,
                track=False,
                progress=False,
            )
        except Exception as exc:  # any failure (endpoint down, harness bug) makes the node unknown, with its reason
            seconds = time.perf_counter() - start
            reason = (
                f"{type(exc).__name__}: {exc}" if isinstance(exc, TunewiseError) else f"{type(exc).__name__}: {exc!r}"
            )
            record = ProbeRecord(
                name=name, candidates=names, n=n, seconds=seconds, run_ids=run_ids, stopped="failed", error=reason
            )
            display.close(final=False)
            return ProbeOutcome(record, None)
        run_ids.append(summary.run_id)
        rounds.update(n, _best_so_far(summary))
        if settled(summary):
            stopped = f"CIs settled at n={n}"
            break
        if n >= cap:
            stopped = f"reached the cap of {cap} examples"
            break
        n = min(n + spec.chunk, cap)
    display.close()
    record = ProbeRecord(
        name=name, candidates=names, n=n, seconds=time.perf_counter() - start, run_ids=run_ids, stopped=stopped
    )
    return ProbeOutcome(record, summary)


def _best_so_far(summary: EvalSummary) -> dict[str, float | str]:
    """The probe's current leader on the primary metric, for its progress line."""
    metric = summary.primary_metric
    scored = [c for c in summary.candidates if metric in c.metrics]
    if not scored:
        return {}
    best = max(scored, key=lambda c: c.metrics[metric].value)
    return {"best": best.name, metric: best.metrics[metric].value}


def measured_candidates(
    summary: EvalSummary, probe: str, project: Project, extra_models: dict[str, ModelSpec], constrained: set[str]
) -> list[Measured]:
    """The probe's candidates as rule inputs."""
    out = []
    for result in summary.candidates:
        metric = result.metrics.get(summary.primary_metric)
        if metric is None:
            continue
        model = extra_models.get(result.model) or project.spec.model_spec(result.model)
        out.append(
            Measured(
                name=result.name,
                probe=probe,
                prompt=result.prompt,
                self_hosted=model.self_hosted,
                metric=metric,
                run_id=summary.run_id,
                operational=dict(result.operational),
                validity=result.metrics.get("schema_valid_rate"),
                constrained=result.name in constrained,
            )
        )
    return out


def find_gain(summary: EvalSummary, a: str, b: str) -> Gain | None:
    """``b - a`` on the primary metric from the paired comparisons, whichever way round they were computed."""
    metric = summary.primary_metric
    for c in summary.comparisons:
        if c.metric != metric:
            continue
        if (c.a, c.b) == (a, b):
            return Gain(a, b, c.diff, c.ci_low, c.ci_high, c.n, summary.run_id)
        if (c.a, c.b) == (b, a):
            return Gain(a, b, -c.diff, -c.ci_high, -c.ci_low, c.n, summary.run_id)
    return None


def prompt_settled(threshold: float, tolerance: float, metric: str) -> Settled:
    def check(summary: EvalSummary) -> bool:
        values = [r.metrics[metric] for r in summary.candidates if metric in r.metrics]
        return bool(values) and all(interval_settled(v, threshold, tolerance) for v in values)

    return check


def rag_settled(threshold: float, tolerance: float, min_gain: float, base: str, rag: str) -> Settled:
    def check(summary: EvalSummary) -> bool:
        gain = find_gain(summary, base, rag)
        metric = summary.primary_metric
        rag_value = summary.candidate(rag).metrics.get(metric)
        return (
            gain is not None
            and gain_settled(gain, min_gain)
            and rag_value is not None
            and interval_settled(rag_value, threshold, tolerance)
        )

    return check


def retrieval_recall(
    project: Project, examples: list[Example], spec: ProbeSpec, split_path: str | None
) -> tuple[float | None, ProbeRecord]:
    """recall@k of the probe's retriever against gold document ids (``probes.gold_doc_field``), when the data has
    them."""

    start = time.perf_counter()
    name = f"retrieval ({spec.retriever}, k={spec.retrieval_k})"
    try:
        assert project.spec.data.documents is not None and split_path is not None
        index = load_or_build(project.path(project.spec.data.documents), project.state_dir / "indexes", spec.retriever)
        id_field = project.spec.data.id_field
        gold = {str(row.get(id_field)): row.get(spec.gold_doc_field) for _, row in read_jsonl(project.path(split_path))}
        queries = [e for e in examples if gold.get(e.id)]
        if not queries:
            why = f"no gold ids in field {spec.gold_doc_field!r}"
            return None, ProbeRecord(name=name, candidates=[], n=0, seconds=time.perf_counter() - start, stopped=why)
        retrieved = [[d.id for d, _ in index.search(query_text(e), spec.retrieval_k)] for e in queries]
        golds = [{str(gold[e.id])} if isinstance(gold[e.id], str) else {str(g) for g in gold[e.id]} for e in queries]
        recall = recall_at_k(retrieved, golds)
        extra = {"recall_at_k": recall, "k": spec.retrieval_k, "n_documents": len(index.documents)}
        record = ProbeRecord(
            name=name,
            candidates=[],
            n=len(queries),
            seconds=time.perf_counter() - start,
            stopped="all examples",
            extra=extra,
        )
        return recall, record
    except (TunewiseError, OSError, ValueError, AssertionError) as exc:
        return None, ProbeRecord(
            name=name,
            candidates=[],
            n=0,
            seconds=time.perf_counter() - start,
            stopped="failed",
            error=f"{type(exc).__name__}: {exc}",
        )
