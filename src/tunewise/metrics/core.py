"""The metrics API the eval runner calls: score raw outputs, summarise them with CIs, compare candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunewise.config import TASK_METRICS
from tunewise.metrics.classify import label_indicators, macro_f1_from_counts, score_classify
from tunewise.metrics.context import MetricContext
from tunewise.metrics.extract import score_extract
from tunewise.metrics.generate import score_generate
from tunewise.metrics.stats import (
    Statistic,
    bootstrap_metric,
    mean_statistic,
    paired_bootstrap_compare,
    paired_compare,
    ratio_statistic,
)
from tunewise.records import MetricValue, PairedComparison

FIELD_PREFIX = "field:"
"""``example_values(ctx, scores, "field:company")`` gives one extract field's per-example correctness."""


def score_outputs(ctx: MetricContext, outputs: list[str], targets: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Score raw model outputs against targets, one ``(parsed, scores)`` per example.

    ``parsed`` is the JSON object (extract; ``None`` when unparseable), the label (classify; ``None`` when the output
    names none) or the stripped text (generate/chat). ``scores`` is a JSON-serialisable dict (see
    :func:`~tunewise.metrics.extract.score_extract`, :func:`~tunewise.metrics.classify.score_classify`,
    :func:`~tunewise.metrics.generate.score_generate`).

    Raises:
        ValueError: ``outputs`` and ``targets`` differ in length, or a target has the wrong shape for the kind.
    """
    if len(outputs) != len(targets):
        raise ValueError(f"{len(outputs)} outputs for {len(targets)} targets")
    if ctx.kind == "extract":
        return [score_extract(ctx, output, target) for output, target in zip(outputs, targets, strict=True)]
    if ctx.kind == "classify":
        return [score_classify(ctx, output, target) for output, target in zip(outputs, targets, strict=True)]
    return list(score_generate(ctx, outputs, targets))


@dataclass(frozen=True)
class _Metric:
    """A metric as ``sum(numerator) / sum(denominator)`` over examples, or a custom statistic (macro F1)."""

    numerator: np.ndarray
    denominator: np.ndarray
    empty: float = 1.0
    statistic: Statistic | None = None

    def as_statistic(self) -> Statistic:
        if self.statistic is not None:
            return self.statistic
        if np.all(self.denominator == 1):
            return mean_statistic(self.numerator)
        return ratio_statistic(self.numerator, self.denominator, empty=self.empty)

    @property
    def n(self) -> int:
        return int(np.count_nonzero(self.denominator))


def _flag(scores: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([float(s[key]) for s in scores], dtype=np.float64)


def _metrics(ctx: MetricContext, scores: list[dict[str, Any]]) -> dict[str, _Metric]:
    ones = np.ones(len(scores))
    if ctx.kind == "extract":
        tp, fp, fn = _flag(scores, "tp"), _flag(scores, "fp"), _flag(scores, "fn")
        return {
            "json_parse_rate": _Metric(_flag(scores, "parsed"), ones),
            "schema_valid_rate": _Metric(_flag(scores, "schema_valid"), ones),
            "field_accuracy": _Metric(_flag(scores, "n_correct"), _flag(scores, "n_fields")),
            "micro_f1": _Metric(2 * tp, 2 * tp + fp + fn),
            "exact_match": _Metric(_flag(scores, "exact_match"), ones),
        }
    if ctx.kind == "classify":
        tp, fp, fn = label_indicators(ctx.labels or [], scores)
        macro = _Metric(ones, ones, statistic=lambda w: macro_f1_from_counts(w @ tp, w @ fp, w @ fn))
        return {
            "accuracy": _Metric(_flag(scores, "correct"), ones),
            "macro_f1": macro,
            "valid_label_rate": _Metric(_flag(scores, "valid_label"), ones),
        }
    metrics = {"rouge_l": _Metric(_flag(scores, "rouge_l"), ones)}
    if scores and all("embedding_cosine" in s for s in scores):
        metrics["embedding_cosine"] = _Metric(_flag(scores, "embedding_cosine"), ones)
    return metrics


def _field_metrics(ctx: MetricContext, scores: list[dict[str, Any]]) -> dict[str, _Metric]:
    if ctx.kind != "extract":
        return {}
    names = list(ctx.fields or dict.fromkeys(name for s in scores for name in s["fields"]))
    return {
        name: _Metric(
            np.array([float(s["fields"].get(name, False)) for s in scores]),
            np.array([float(name in s["fields"]) for s in scores]),
        )
        for name in names
    }


def summarize_scores(
    ctx: MetricContext, scores: list[dict[str, Any]], *, samples: int = 1000, seed: int = 0
) -> tuple[dict[str, MetricValue], dict[str, MetricValue]]:
    """Every quality metric of the task kind with a seeded 95% percentile bootstrap CI.

    ``field_accuracy`` is micro (correct fields / scored fields) and ``micro_f1`` is ``2TP / (2TP + FP + FN)``
    over all examples; their intervals resample examples and recompute the ratio. ``macro_f1`` averages per-label
    F1 over labels that occur as gold or prediction, recomputed on each resample.

    Returns:
        ``(metrics, per_field)``: per_field holds each extract field's accuracy (empty for other kinds).

    Raises:
        ValueError: no scores.
    """
    if not scores:
        raise ValueError("cannot summarise zero examples")
    metrics = {
        name: bootstrap_metric(metric.as_statistic(), len(scores), samples=samples, seed=seed)
        for name, metric in _metrics(ctx, scores).items()
    }
    per_field = {}
    for name, metric in _field_metrics(ctx, scores).items():
        value = bootstrap_metric(metric.as_statistic(), len(scores), samples=samples, seed=seed)
        per_field[name] = MetricValue(value.value, value.ci_low, value.ci_high, metric.n)
    return metrics, per_field


def _lookup(ctx: MetricContext, scores: list[dict[str, Any]], metric: str) -> _Metric | None:
    """The metric's definition on these scores; ``None`` when the kind has it but these scores lack it.

    Raises:
        ValueError: a metric name the task kind does not have.
    """
    if metric.startswith(FIELD_PREFIX):
        if ctx.kind != "extract":
            raise ValueError(f"{metric!r}: per-field metrics exist for extract only, not {ctx.kind!r}")
        return _field_metrics(ctx, scores).get(metric[len(FIELD_PREFIX) :])
    if metric not in TASK_METRICS[ctx.kind]:
        known = ", ".join([*TASK_METRICS[ctx.kind], *(["field:<name>"] if ctx.kind == "extract" else [])])
        raise ValueError(f"unknown metric {metric!r} for task kind {ctx.kind!r} (known: {known})")
    return _metrics(ctx, scores).get(metric)


def metric_value(ctx: MetricContext, scores: list[dict[str, Any]], metric: str) -> float | None:
    """The point estimate of any metric (``macro_f1`` included) without a bootstrap; ``None`` when unavailable.

    Raises:
        ValueError: an unknown metric, or no scores.
    """
    if not scores:
        raise ValueError("cannot compute a metric over zero examples")
    spec = _lookup(ctx, scores, metric)
    return None if spec is None else float(spec.as_statistic()(np.ones((1, len(scores))))[0])


def example_values(ctx: MetricContext, scores: list[dict[str, Any]], metric: str) -> np.ndarray | None:
    """One value per example whose mean equals the metric, for paired tests; ``None`` when there is no such array.

    Rates and accuracy give 0/1 per example. A ratio metric (``field_accuracy``, ``micro_f1``, ``field:<name>``)
    gives ``numerator_i / mean(denominator)``: when every example has the same denominator (extract with a schema:
    every example scores the same fields) that is exactly the per-example fraction of fields correct; when they differ
    (no schema, gold objects with different keys) examples are weighted by their share of fields, and the mean still
    equals the micro value exactly.

    Returns ``None`` for ``macro_f1`` (not a mean of per-example values; compare it with
    :func:`paired_compare_scores`) and for a metric these scores lack (``embedding_cosine`` when it was not
    computed, a field no example has).

    Raises:
        ValueError: a metric name the task kind does not have.
    """
    spec = _lookup(ctx, scores, metric)
    if spec is None or spec.statistic is not None:
        return None
    mean_denominator = float(np.mean(spec.denominator)) if len(scores) else 0.0
    if mean_denominator == 0:
        return np.full(len(scores), spec.empty)
    return spec.numerator / mean_denominator


def paired_compare_scores(
    ctx: MetricContext,
    metric: str,
    a: str,
    b: str,
    scores_a: list[dict[str, Any]],
    scores_b: list[dict[str, Any]],
    *,
    samples: int = 1000,
    seed: int = 0,
) -> PairedComparison:
    """``b`` minus ``a`` on any metric: :func:`paired_compare` on per-example values where the metric is a mean,
    a paired bootstrap of the statistic itself otherwise (``macro_f1``).

    Raises:
        ValueError: different numbers of examples, an unknown metric, or one the scores lack.
    """
    if len(scores_a) != len(scores_b):
        raise ValueError(f"paired scores differ in length: {len(scores_a)} and {len(scores_b)}")
    spec_a, spec_b = _lookup(ctx, scores_a, metric), _lookup(ctx, scores_b, metric)
    if spec_a is None or spec_b is None:
        raise ValueError(f"{metric} was not computed for both candidates")
    values_a, values_b = example_values(ctx, scores_a, metric), example_values(ctx, scores_b, metric)
    if values_a is not None and values_b is not None:
        return paired_compare(metric, a, b, values_a, values_b, samples=samples, seed=seed)
    return paired_bootstrap_compare(
        metric, a, b, spec_a.as_statistic(), spec_b.as_statistic(), len(scores_a), samples=samples, seed=seed
    )
