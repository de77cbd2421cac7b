"""Student against teacher on the same gold examples: quality ratio with a paired CI, latency, tokens and cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tunewise.config import Project
from tunewise.distill.record import SideBySide
from tunewise.eval.predictions import scores_by_candidate
from tunewise.metrics import MetricContext
from tunewise.metrics.core import example_values
from tunewise.metrics.stats import bootstrap_metric, ratio_statistic
from tunewise.records import CandidateResult, EvalSummary, MetricValue

ROLES = {"student": "student", "student-gold": "ceiling", "base-zero-shot": "base"}


def compare_summary(project: Project, summary: EvalSummary, eval_dir: Path, teacher: str) -> dict[str, Any]:
    """The :class:`~tunewise.distill.record.DistillResult` fields an evaluation of teacher and student gives."""
    metric = summary.primary_metric
    sides = [_side(result, metric, _role(result.name, teacher)) for result in summary.candidates]
    scores = scores_by_candidate(eval_dir)
    ctx = MetricContext.from_project(project, use_embeddings=False)
    student_values = example_values(ctx, scores["student"], metric)
    teacher_values = example_values(ctx, scores[teacher], metric)
    ratio = None
    if student_values is not None and teacher_values is not None:
        eval_spec = project.spec.eval
        statistic = ratio_statistic(student_values, teacher_values, empty=float("nan"))
        ratio = bootstrap_metric(
            statistic, len(student_values), samples=eval_spec.bootstrap_samples, seed=eval_spec.seed
        )
    student = next(s for s in sides if s.role == "student")
    master = next(s for s in sides if s.role == "teacher")
    comparisons = [c for c in summary.comparisons if {c.a, c.b} & {"student"}]
    return {
        "candidates": sides,
        "quality_ratio": ratio if ratio is not None and np.isfinite(ratio.value) else None,
        "latency_p50_ratio": _ratio(student.latency_p50_ms, master.latency_p50_ms),
        "latency_p95_ratio": _ratio(student.latency_p95_ms, master.latency_p95_ms),
        "prompt_tokens_ratio": _ratio(student.prompt_tokens_mean, master.prompt_tokens_mean),
        "cost_ratio": _ratio(student.usd_per_1k_requests, master.usd_per_1k_requests),
        "comparisons": comparisons,
    }


def _role(name: str, teacher: str) -> str:
    return "teacher" if name == teacher else ROLES.get(name, "base")


def _side(result: CandidateResult, metric: str, role: str) -> SideBySide:
    op = result.operational
    per_1m = op.get("usd_per_1m_tokens")
    tokens = op["prompt_tokens_mean"] + op["completion_tokens_mean"]
    return SideBySide(
        name=result.name,
        role=role,  # type: ignore[arg-type]
        quality=result.metrics.get(metric) or MetricValue(float("nan"), float("nan"), float("nan"), 0),
        latency_p50_ms=op["latency_p50_ms"],
        latency_p95_ms=op["latency_p95_ms"],
        prompt_tokens_mean=op["prompt_tokens_mean"],
        completion_tokens_mean=op["completion_tokens_mean"],
        usd_per_1m_tokens=per_1m,
        usd_per_1k_requests=per_1m * tokens / 1000 if per_1m is not None else None,
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None
