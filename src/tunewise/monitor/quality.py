"""Quality on the labelled production examples of a window, against the champion's dev figure."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunewise.metrics import MetricContext, metric_value, score_outputs
from tunewise.monitor.record import SignalResult
from tunewise.monitor.traffic import TrafficRow
from tunewise.records import MetricValue

LEVEL = 0.95


def metric_with_distribution(
    ctx: MetricContext, scores: list[dict[str, Any]], metric: str, *, bootstrap: int, seed: int
) -> tuple[MetricValue, np.ndarray]:
    """The metric with its 95% percentile bootstrap CI, and the bootstrap distribution itself (examples resampled;
    any metric of the kind, ``macro_f1`` included, recomputed on each resample).

    Raises:
        ValueError: no scores, or a metric the task kind does not have.
    """
    value = metric_value(ctx, scores, metric)
    if value is None:
        raise ValueError(f"{metric} cannot be computed on these scores")
    rng = np.random.default_rng(seed)
    distribution = np.array(
        [
            metric_value(ctx, [scores[i] for i in rng.integers(0, len(scores), len(scores))], metric) or 0.0
            for _ in range(bootstrap)
        ]
    )
    low, high = np.percentile(distribution, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return MetricValue(value, float(low), float(high), len(scores)), distribution


def quality_signal(
    ctx: MetricContext,
    rows: list[TrafficRow],
    labelled: dict[str, Any],
    metric: str,
    champion: float | None,
    *,
    bootstrap: int,
    seed: int,
) -> tuple[MetricValue | None, SignalResult | None]:
    """Score the window's answers to the labelled requests; the drop below the champion's figure is the effect.

    The p-value is one-sided: the share of bootstrap resamples of the window's metric at or above the champion's
    figure, ``(1 + #{resample ≥ champion}) / (1 + bootstrap)`` (the champion's figure is taken as known).

    Returns:
        ``(quality, signal)``: both ``None`` when no answered row is labelled; the signal is ``untested`` without a
        champion figure.
    """
    pairs = [(r.output, labelled[r.id]) for r in rows if r.id in labelled and r.output is not None]
    if not pairs:
        return None, None
    scored = score_outputs(ctx, [output or "" for output, _ in pairs], [gold for _, gold in pairs])
    value, distribution = metric_with_distribution(ctx, [s for _, s in scored], metric, bootstrap=bootstrap, seed=seed)
    if champion is None:
        signal = SignalResult(
            name="quality",
            group="quality",
            effect=None,
            window_value=value.value,
            n_window=value.n,
            status="untested",
            test="no champion figure to compare with",
            detail={"metric": metric, "ci_low": value.ci_low, "ci_high": value.ci_high},
        )
        return value, signal
    p = (1 + int(np.sum(distribution >= champion))) / (1 + len(distribution))
    signal = SignalResult(
        name="quality",
        group="quality",
        effect=champion - value.value,
        ci_low=champion - value.ci_high,
        ci_high=champion - value.ci_low,
        p_value=p,
        test="bootstrap_one_sided",
        reference_value=champion,
        window_value=value.value,
        n_window=value.n,
        detail={"metric": metric},
    )
    return value, signal
