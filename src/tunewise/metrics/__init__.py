"""Task metrics with bootstrap confidence intervals, paired significance tests and operational figures.

The eval runner's path: :class:`MetricContext` from the project, :func:`score_outputs` per candidate,
:func:`summarize_scores` for metrics with CIs, :func:`example_values` + :func:`paired_compare` (or
:func:`paired_compare_scores` for any metric) between candidates, :func:`operational_summary` for latency and cost.
"""

from tunewise.metrics.classify import confusion_matrix, map_label
from tunewise.metrics.context import MetricContext
from tunewise.metrics.core import (
    example_values,
    metric_value,
    paired_compare_scores,
    score_outputs,
    summarize_scores,
)
from tunewise.metrics.extract import extract_json_object
from tunewise.metrics.generate import rouge_l
from tunewise.metrics.normalize import NORMALIZERS, parse_date, parse_number, values_equal
from tunewise.metrics.operational import PRICE_TABLE, hosted_price, operational_summary
from tunewise.metrics.stats import mcnemar_exact, mean_ci, paired_compare

__all__ = [
    "NORMALIZERS",
    "PRICE_TABLE",
    "MetricContext",
    "confusion_matrix",
    "example_values",
    "extract_json_object",
    "hosted_price",
    "map_label",
    "mcnemar_exact",
    "mean_ci",
    "metric_value",
    "operational_summary",
    "paired_compare",
    "paired_compare_scores",
    "parse_date",
    "parse_number",
    "rouge_l",
    "score_outputs",
    "summarize_scores",
    "values_equal",
]
